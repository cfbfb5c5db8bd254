//! Writing the wrapper of a checked op. The wrapper keeps the function's name, visibility and
//! attributes; its parameters accept `T`, `Ref<T>` or `&Ref<T>`, and it returns refs.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ItemFn;

use crate::signature::{Role, Signature};

pub fn expand(func: &ItemFn, sig: &Signature) -> TokenStream {
    let m = quote!(::mandala::__private);
    let vis = &func.vis;
    let attrs = &func.attrs;
    let ident = &func.sig.ident;
    let body = &func.block;
    let orig_ret = &func.sig.output;
    let name = &sig.name;
    let out_names = &sig.output_names;

    let idents: Vec<_> = sig.args.iter().map(|a| &a.ident).collect();
    let pats: Vec<_> = sig.args.iter().map(|a| &a.pat).collect();
    let tys: Vec<_> = sig.args.iter().map(|a| &a.ty).collect();
    let stored_names: Vec<_> = sig.args.iter().map(|a| &a.stored_name).collect();

    let out_tys = &sig.outputs;
    let ok_ty = if sig.tuple {
        quote!((#(::mandala::Ref<#out_tys>),*))
    } else {
        quote!(::mandala::Ref<#(#out_tys)*>)
    };
    let ret_ty = match &sig.error {
        Some(e) => quote!(::core::result::Result<#ok_ty, #e>),
        None => quote!(::mandala::Result<#ok_ty>),
    };
    let unwrap_result = match &sig.error {
        Some(_) => quote!(let __out = __out?;),
        None => quote!(),
    };
    let n = sig.outputs.len();
    let elems: Vec<_> = (0..n).map(|i| format_ident!("__o{}", i)).collect();
    let idx: Vec<_> = (0..n).collect();
    let (plain_wrap, hit_wrap, record) = if sig.tuple {
        (
            quote!({ let (#(#elems),*) = __out; (#(#m::detached(#elems)),*) }),
            quote!(::core::result::Result::Ok((#(__hit.output(#idx)?),*))),
            quote!({ let (#(#elems),*) = __out; (#(__call.output(#idx, #elems)?),*) }),
        )
    } else {
        (
            quote!(#m::detached(__out)),
            quote!(__hit.output(0).map_err(::core::convert::From::from)),
            quote!(__call.output(0, __out)?),
        )
    };

    let declare: Vec<TokenStream> = sig
        .args
        .iter()
        .map(|a| {
            let id = &a.ident;
            let s = &a.stored_name;
            match &a.role {
                Role::Hashed => quote!(__call.input(#s, &#id)?;),
                Role::Ignored => quote!(),
                Role::NewDefault(expr) => quote! {
                    if !#id.equals(&(#expr), #name, #s)? { __call.input(#s, &#id)?; }
                },
            }
        })
        .collect();

    let content = crate::track::content(syn::Item::Fn(func.clone()));
    let cosmetic_of = &sig.cosmetic_of;
    let source = crate::track::source_of(&func.sig, &func.block);

    quote! {
        #m::inventory::submit! {
            #m::ComponentSpec {
                kind: #m::ComponentKind::Op,
                name: #name,
                content: #content,
                source: #source,
                value_id: ::core::option::Option::None,
                cosmetic_of: &[#(#cosmetic_of),*],
            }
        }

        /// The op's name as a handle (`storage.cf(OP)`), made by `#[op]`.
        #[allow(non_snake_case)]
        #vis mod #ident {
            /// The op's name.
            #[allow(dead_code)]
            pub const OP: ::mandala::OpName = ::mandala::OpName(#name);
        }

        #(#attrs)*
        #[allow(clippy::too_many_arguments)]
        #vis fn #ident(#(#idents: impl ::mandala::IntoArg<#tys>),*) -> #ret_ty {
            #[allow(clippy::too_many_arguments)]
            #[inline(always)]
            fn __mandala_body(#(#pats: #tys),*) #orig_ret #body

            static __MANDALA_OP: #m::OpSpec = #m::OpSpec { name: #name, outputs: &[#(#out_names),*], content: #content };
            #(let #idents = #m::Input::new(::mandala::IntoArg::into_arg(#idents));)*
            let mut __call = match #m::begin(&__MANDALA_OP) {
                #m::Begin::Plain(__engine) => {
                    let __out = __mandala_body(#(#idents.into_value(__engine.as_ref())?),*);
                    #unwrap_result
                    return ::core::result::Result::Ok(#plain_wrap);
                }
                #m::Begin::Memo(__c) => __c,
            };
            #(#declare)*
            if let ::core::option::Option::Some(__hit) = __call.lookup()? {
                return #hit_wrap;
            }
            let __out = __mandala_body(#(#idents.into_body(&mut __call, #stored_names)?),*);
            #unwrap_result
            __call.executed()?;
            let __ret = #record;
            __call.finish()?;
            ::core::result::Result::Ok(__ret)
        }
    }
}
