//! Parsing `#[op(...)]` options: `name = "..."`, `output_names(a, b)`, `ignore(x, y)`,
//! `new_default(x = EXPR, ...)`.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Token};

/// The options given to `#[op(...)]`.
#[derive(Default)]
pub struct Options {
    pub name: Option<LitStr>,
    pub output_names: Option<Vec<Ident>>,
    pub ignore: Vec<Ident>,
    pub new_default: Vec<(Ident, Expr)>,
    pub cosmetic_of: Vec<LitStr>,
    pub renamed: Vec<(Ident, LitStr)>,
}

struct DefaultArg(Ident, Expr);

struct Rename(Ident, LitStr);

impl Parse for Rename {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        Ok(Rename(name, input.parse()?))
    }
}

impl Parse for DefaultArg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        Ok(DefaultArg(name, input.parse()?))
    }
}

fn duplicate(span: Span, what: &str) -> syn::Error {
    syn::Error::new(span, format!("`{what}` is given twice"))
}

impl Options {
    pub fn parse(tokens: TokenStream) -> syn::Result<Options> {
        let mut opts = Options::default();
        let mut errors: Option<syn::Error> = None;
        let parser = syn::meta::parser(|meta| {
            let path = &meta.path;
            if path.is_ident("name") {
                if opts.name.is_some() {
                    return Err(duplicate(meta.path.require_ident()?.span(), "name"));
                }
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new(lit.span(), "an op name cannot be empty"));
                }
                opts.name = Some(lit);
            } else if path.is_ident("output_names") {
                if opts.output_names.is_some() {
                    return Err(duplicate(meta.path.require_ident()?.span(), "output_names"));
                }
                let content;
                syn::parenthesized!(content in meta.input);
                let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                opts.output_names = Some(names.into_iter().collect());
            } else if path.is_ident("ignore") {
                let content;
                syn::parenthesized!(content in meta.input);
                opts.ignore
                    .extend(Punctuated::<Ident, Token![,]>::parse_terminated(&content)?);
            } else if path.is_ident("renamed") {
                let content;
                syn::parenthesized!(content in meta.input);
                let args = Punctuated::<Rename, Token![,]>::parse_terminated(&content)?;
                opts.renamed.extend(args.into_iter().map(|r| (r.0, r.1)));
            } else if path.is_ident("cosmetic_of") {
                opts.cosmetic_of.push(meta.value()?.parse()?);
            } else if path.is_ident("new_default") {
                let content;
                syn::parenthesized!(content in meta.input);
                let args = Punctuated::<DefaultArg, Token![,]>::parse_terminated(&content)?;
                opts.new_default
                    .extend(args.into_iter().map(|d| (d.0, d.1)));
            } else {
                let e = meta.error(
                    "unknown op option; expected `name`, `output_names`, `ignore`, `new_default`, `renamed` or `cosmetic_of`",
                );
                match &mut errors {
                    Some(all) => all.combine(e),
                    None => errors = Some(e),
                }
            }
            Ok(())
        });
        parser.parse2(tokens)?;
        match errors {
            Some(e) => Err(e),
            None => Ok(opts),
        }
    }
}
