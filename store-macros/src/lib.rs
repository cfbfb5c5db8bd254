//! `#[op]`: turns a function into a memoized op of mandala.
//!
//! The macro parses the attribute (`options`), checks the function and collects every
//! problem at once (`signature`), then writes the wrapper (`expand`). See the `mandala`
//! crate for the user-facing documentation of `#[op]`.

use proc_macro::TokenStream;

mod expand;
mod options;
mod signature;
mod track;

/// Makes a function a memoized op. See `mandala::op` for the options and an example.
#[proc_macro_attribute]
pub fn op(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = syn::parse_macro_input!(item as syn::ItemFn);
    let result = options::Options::parse(attr.into())
        .and_then(|opts| signature::Signature::check(&func, opts))
        .map(|sig| expand::expand(&func, &sig));
    match result {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Tracks a function, every method of an impl block, or a static: while an op executes, each
/// call of the function (read of the static) is recorded as a dependency of that op call.
/// See `mandala::track`.
#[proc_macro_attribute]
pub fn track(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::Item);
    match track::options(attr.into()).and_then(|c| track::expand(item, &c)) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
