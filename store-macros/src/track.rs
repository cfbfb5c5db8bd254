//! `#[track]`: registers a function, the methods of an impl block, or a static as a component
//! whose use is recorded as a dependency of the op call executing at the time.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{ImplItem, Item, ItemFn, ItemStatic};

/// The item's content: its tokens as printed, without doc attributes. Comments are not tokens
/// and formatting is not kept, so neither reaches the content.
pub fn content(mut item: Item) -> String {
    fn strip(attrs: &mut Vec<syn::Attribute>) {
        attrs.retain(|a| !a.path().is_ident("doc") && !a.path().is_ident("track"));
    }
    match &mut item {
        Item::Fn(f) => strip(&mut f.attrs),
        Item::Static(s) => strip(&mut s.attrs),
        Item::Impl(i) => {
            strip(&mut i.attrs);
            for it in &mut i.items {
                if let ImplItem::Fn(f) = it {
                    strip(&mut f.attrs);
                }
            }
        }
        _ => {}
    }
    let mut out = String::new();
    print_tokens(item.to_token_stream(), &mut out);
    out
}

/// Prints tokens in a fixed form of our own (one space between tokens, none inside a joint
/// operator), so content ids do not depend on how a compiler or proc-macro2 version prints them.
fn print_tokens(tokens: TokenStream, out: &mut String) {
    use proc_macro2::{Delimiter, Spacing, TokenTree};
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                out.push(' ');
                print_tokens(g.stream(), out);
                out.push_str(close);
                out.push(' ');
            }
            TokenTree::Ident(i) => {
                out.push_str(&i.to_string());
                out.push(' ');
            }
            TokenTree::Punct(p) => {
                out.push(p.as_char());
                if p.spacing() == Spacing::Alone {
                    out.push(' ');
                }
            }
            TokenTree::Literal(l) => {
                out.push_str(&l.to_string());
                out.push(' ');
            }
        }
    }
}

/// The text to display (diffs, `mandala log`): the function as written, from its signature to
/// its closing brace, read from its source file; else the signature as printed and the body as
/// written; else both as printed (a function made by a `macro_rules!` has no file text).
pub fn source_of(sig: &syn::Signature, block: &syn::Block) -> String {
    if let Some(text) = written(sig.fn_token.span, block.brace_token.span.close()) {
        return text;
    }
    let printed = sig.to_token_stream().to_string();
    match block.brace_token.span.join().source_text() {
        Some(body) => format!("{printed} {body}"),
        None => format!("{printed} {}", block.to_token_stream()),
    }
}

/// The source text from the start of `first` to the end of `last`, read from their file.
fn written(first: proc_macro2::Span, last: proc_macro2::Span) -> Option<String> {
    if !proc_macro::is_available() {
        return None; // the macro's own unit tests
    }
    let (first, last) = (first.unwrap(), last.unwrap());
    let file = first.local_file()?;
    if last.local_file()? != file {
        return None;
    }
    let text = std::fs::read_to_string(&file).ok()?;
    // Lines and columns count from 1; columns in characters.
    let offset = |line: usize, column: usize| -> Option<usize> {
        let column = column.checked_sub(1)?;
        let start: usize = text
            .split_inclusive('\n')
            .take(line.checked_sub(1)?)
            .map(str::len)
            .sum();
        let rest = text.get(start..)?;
        let byte = rest
            .char_indices()
            .nth(column)
            .map_or(rest.len(), |(i, _)| i);
        Some(start + byte)
    };
    let (from, to) = (first.start(), last.end());
    let piece = text.get(offset(from.line(), from.column())?..offset(to.line(), to.column())?)?;
    // What the tokens say must be what the file says (a file edited since is not trusted).
    (piece.starts_with("fn") && piece.ends_with('}')).then(|| piece.to_string())
}

/// The prologue that registers component `name` and reports its use.
pub fn prologue(
    kind: TokenStream,
    name: TokenStream,
    content: &str,
    source: &str,
    cosmetic_of: &[syn::LitStr],
) -> TokenStream {
    let m = quote!(::mandala::__private);
    quote! {
        #m::inventory::submit! {
            #m::ComponentSpec {
                kind: #kind,
                name: #name,
                content: #content,
                source: #source,
                value_id: None,
                cosmetic_of: &[#(#cosmetic_of),*],
            }
        }
        {
            static __MANDALA_CONTENT_ID: ::std::sync::OnceLock<::mandala::Id> = ::std::sync::OnceLock::new();
            #m::touch(#name, || *__MANDALA_CONTENT_ID.get_or_init(|| #m::source_id(#content)));
        }
    }
}

/// Puts the registering prologue in front of a function's body (a free function or a method).
/// The content is that of the function as written, without doc comments.
fn instrument(
    attrs: &[syn::Attribute],
    sig: &syn::Signature,
    block: &mut syn::Block,
    name: TokenStream,
    cosmetic_of: &[syn::LitStr],
) {
    let as_fn = ItemFn {
        attrs: attrs.to_vec(),
        vis: syn::Visibility::Inherited,
        sig: sig.clone(),
        block: Box::new(block.clone()),
    };
    let content = content(Item::Fn(as_fn));
    let source = source_of(sig, block);
    let kind = quote!(::mandala::__private::ComponentKind::Function);
    let pro = prologue(kind, name, &content, &source, cosmetic_of);
    let body = block.clone();
    *block = syn::parse_quote!({ #pro #body });
}

fn track_fn(mut f: ItemFn, name: TokenStream, cosmetic_of: &[syn::LitStr]) -> TokenStream {
    instrument(&f.attrs, &f.sig, &mut f.block, name, cosmetic_of);
    f.into_token_stream()
}

fn track_static(
    s: ItemStatic,
    name_lit: TokenStream,
    cosmetic_of: &[syn::LitStr],
) -> syn::Result<TokenStream> {
    if let syn::StaticMutability::Mut(m) = &s.mutability {
        return Err(syn::Error::new_spanned(
            m,
            "a tracked global cannot be `static mut`",
        ));
    }
    let ItemStatic {
        attrs,
        vis,
        ident,
        ty,
        expr,
        ..
    } = &s;
    let source = s.to_token_stream().to_string();
    let m = quote!(::mandala::__private);
    Ok(quote! {
        #(#attrs)*
        #vis static #ident: ::mandala::Tracked<#ty> = ::mandala::Tracked::new(#name_lit, #expr);
        #m::inventory::submit! {
            #m::ComponentSpec {
                kind: #m::ComponentKind::Global,
                name: #name_lit,
                content: "",
                source: #source,
                value_id: Some(|| #ident.content_id()),
                cosmetic_of: &[#(#cosmetic_of),*],
            }
        }
    })
}

/// The options of `#[track(...)]`.
#[derive(Default)]
pub struct TrackOptions {
    /// `cosmetic_of = "content id prefix"` (repeatable).
    pub cosmetic_of: Vec<syn::LitStr>,
    /// `name = "..."`: the component's name, instead of `module::path::item` (keeps its
    /// history when the item moves, as `#[op(name = "...")]` does for ops).
    pub name: Option<syn::LitStr>,
}

/// Parses `#[track(...)]` options.
pub fn options(attr: TokenStream) -> syn::Result<TrackOptions> {
    use syn::parse::Parser;
    let mut out = TrackOptions::default();
    syn::meta::parser(|meta| {
        if meta.path.is_ident("cosmetic_of") {
            out.cosmetic_of.push(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("name") {
            if out.name.is_some() {
                return Err(meta.error("`name` is given twice"));
            }
            let lit: syn::LitStr = meta.value()?.parse()?;
            if lit.value().is_empty() {
                return Err(syn::Error::new(lit.span(), "a component name cannot be empty"));
            }
            out.name = Some(lit);
            Ok(())
        } else {
            Err(meta.error(
                "unknown #[track] option; expected `cosmetic_of = \"content id prefix\"` or `name = \"...\"`",
            ))
        }
    })
    .parse2(attr)?;
    Ok(out)
}

/// Expands `#[track]` on `item`.
pub fn expand(item: Item, opts: &TrackOptions) -> syn::Result<TokenStream> {
    let cosmetic_of = &opts.cosmetic_of[..];
    let pinned = |ident: &syn::Ident| match &opts.name {
        Some(n) => quote!(#n),
        None => quote!(concat!(module_path!(), "::", stringify!(#ident))),
    };
    match item {
        Item::Fn(f) => {
            if !f.sig.generics.params.is_empty() {
                return Err(syn::Error::new_spanned(&f.sig.generics, "a tracked function cannot be generic (yet): its content would differ per instance"));
            }
            let name = pinned(&f.sig.ident);
            Ok(track_fn(f, name, cosmetic_of))
        }
        Item::Static(s) => {
            let name = pinned(&s.ident);
            track_static(s, name, cosmetic_of)
        }
        Item::Impl(mut i) => {
            if let Some(n) = &opts.name {
                return Err(syn::Error::new(
                    n.span(),
                    "`name` pins one item's name: use it on a function or a static, not an impl block",
                ));
            }
            if !i.generics.params.is_empty() {
                return Err(syn::Error::new_spanned(
                    &i.generics,
                    "a tracked impl block cannot be generic (yet)",
                ));
            }
            let ty = i.self_ty.to_token_stream().to_string().replace(' ', "");
            for it in &mut i.items {
                if let ImplItem::Fn(f) = it {
                    let ident = f.sig.ident.to_string();
                    let name = quote!(concat!(module_path!(), "::", #ty, "::", #ident));
                    instrument(&f.attrs, &f.sig, &mut f.block, name, cosmetic_of);
                }
            }
            Ok(i.into_token_stream())
        }
        other => Err(syn::Error::new_spanned(
            other,
            "#[track] goes on a function, an impl block or a static",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_comments_and_docs_do_not_change_the_content() {
        let a: Item = syn::parse_str("/// Scales.\nfn scale(x: f64) -> f64 { x * 2.0 }").unwrap();
        let b: Item =
            syn::parse_str("fn scale(x: f64)\n    -> f64 {\n    // twice\n    x   *   2.0\n}")
                .unwrap();
        let c: Item = syn::parse_str("fn scale(x: f64) -> f64 { x * 3.0 }").unwrap();
        assert_eq!(content(a.clone()), content(b));
        assert_ne!(content(a), content(c));
    }

    #[test]
    fn content_is_printed_in_our_own_fixed_form() {
        let f: Item =
            syn::parse_str("fn f(a: &[u8]) -> u8 { if a.len() >= 2 { a[0] } else { 0 } }").unwrap();
        assert_eq!(
            content(f),
            "fn f ( a : & [ u8 ] ) -> u8 { if a . len ( ) >= 2 { a [ 0 ] } else { 0 } } "
        );
    }

    #[test]
    fn doc_comments_on_methods_are_not_content() {
        let a: Item = syn::parse_str("impl S { /// One.\n fn f(&self) -> u8 { 1 } }").unwrap();
        let b: Item = syn::parse_str("impl S { /// Two.\n fn f(&self) -> u8 { 1 } }").unwrap();
        let (a, b) = (
            expand(a, &TrackOptions::default()).unwrap().to_string(),
            expand(b, &TrackOptions::default()).unwrap().to_string(),
        );
        let content = |s: &str| {
            s.split("content :")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(content(&a), content(&b));
    }

    #[test]
    fn statics_become_tracked() {
        let s: Item = syn::parse_str("pub static N_CLASS: u32 = 2;").unwrap();
        let out = expand(s, &TrackOptions::default()).unwrap().to_string();
        assert!(out.contains(":: mandala :: Tracked < u32 >"), "{out}");
        let s: Item = syn::parse_str("static mut N: u32 = 2;").unwrap();
        assert_eq!(
            expand(s, &TrackOptions::default()).unwrap_err().to_string(),
            "a tracked global cannot be `static mut`"
        );
    }
}
