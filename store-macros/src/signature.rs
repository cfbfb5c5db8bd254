//! Checking an op's function against its options, collecting every problem before failing.

use syn::{FnArg, Ident, ItemFn, LitStr, Pat, ReturnType, Type};

use crate::options::Options;

/// How an argument takes part in the call's identity.
pub enum Role {
    /// Hashed and stored.
    Hashed,
    /// Passed to the body, neither hashed nor stored.
    Ignored,
    /// Left out of the identity when equal to this expression.
    NewDefault(syn::Expr),
}

pub struct Arg {
    pub ident: Ident,
    /// The name the argument is stored under (its identity): its own, or the earlier name
    /// given by `renamed(new = "old")`.
    pub stored_name: String,
    pub pat: Pat,
    pub ty: Type,
    pub role: Role,
}

/// A checked op: everything `expand` needs.
pub struct Signature {
    pub name: LitStr,
    pub args: Vec<Arg>,
    /// One type per output (the tuple's elements, or the single return type).
    pub outputs: Vec<Type>,
    /// Whether the function's return type is a tuple (several outputs).
    pub tuple: bool,
    pub output_names: Vec<String>,
    /// `Some(E)` for a function returning `Result<T, E>`.
    pub error: Option<Type>,
    /// Content id prefixes this version declares itself compatible with.
    pub cosmetic_of: Vec<LitStr>,
}

fn result_parts(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut it = args.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    Some((it.next()?, it.next()?))
}

struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: impl quote::ToTokens, msg: impl std::fmt::Display) {
        let e = syn::Error::new_spanned(span, msg);
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}

impl Signature {
    pub fn check(func: &ItemFn, opts: Options) -> syn::Result<Signature> {
        let mut errs = Errors(None);
        let sig = &func.sig;
        if sig.asyncness.is_some() {
            errs.push(sig.asyncness, "an op cannot be async");
        }
        if !sig.generics.params.is_empty() {
            errs.push(
                &sig.generics,
                "an op cannot be generic: its name is its identity",
            );
        }
        if sig.variadic.is_some() {
            errs.push(&sig.variadic, "an op cannot be variadic");
        }
        let mut args = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(r) => errs.push(r, "an op must be a free function (no `self`)"),
                FnArg::Typed(pt) => match &*pt.pat {
                    Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                        if let Type::Reference(_) = &*pt.ty {
                            errs.push(&pt.ty, "op arguments are owned values; take `T`, not `&T` (callers may still pass `&Ref<T>`)");
                        }
                        args.push(Arg {
                            stored_name: pi.ident.to_string(),
                            ident: pi.ident.clone(),
                            pat: (*pt.pat).clone(),
                            ty: (*pt.ty).clone(),
                            role: Role::Hashed,
                        });
                    }
                    other => errs.push(
                        other,
                        "op arguments must be plain names (`x: T` or `mut x: T`)",
                    ),
                },
            }
        }
        for ig in &opts.ignore {
            match args.iter_mut().find(|a| a.ident == *ig) {
                Some(a) => a.role = Role::Ignored,
                None => errs.push(ig, format!("`ignore({ig})`: the op has no argument `{ig}`")),
            }
        }
        for (name, expr) in &opts.new_default {
            match args.iter_mut().find(|a| a.ident == *name) {
                Some(a) if matches!(a.role, Role::Ignored) => errs.push(
                    name,
                    format!("`{name}` cannot be both ignored and a new_default"),
                ),
                Some(a) => a.role = Role::NewDefault(expr.clone()),
                None => errs.push(
                    name,
                    format!("`new_default({name} = ...)`: the op has no argument `{name}`"),
                ),
            }
        }
        for (new, old) in &opts.renamed {
            match args.iter_mut().find(|a| a.ident == *new) {
                Some(a) => a.stored_name = old.value(),
                None => errs.push(
                    new,
                    format!("`renamed({new} = ...)`: the op has no argument `{new}`"),
                ),
            }
        }
        let ret: Type = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, t) => (**t).clone(),
        };
        let (ok, error) = match result_parts(&ret) {
            Some((ok, err)) => (ok, Some(err)),
            None => (ret, None),
        };
        let (outputs, tuple) = match &ok {
            Type::Tuple(t) if !t.elems.is_empty() => (t.elems.iter().cloned().collect(), true),
            other => (vec![other.clone()], false),
        };
        let output_names: Vec<String> = match &opts.output_names {
            Some(names) => {
                if names.len() != outputs.len() {
                    errs.push(
                        &sig.output,
                        format!(
                            "output_names gives {} names but the op returns {} outputs",
                            names.len(),
                            outputs.len()
                        ),
                    );
                }
                for n in names {
                    if args.iter().any(|a| a.ident == *n) {
                        errs.push(n, format!("output name `{n}` is also an argument name"));
                    }
                }
                names.iter().map(|n| n.to_string()).collect()
            }
            None => (0..outputs.len()).map(|i| format!("output_{i}")).collect(),
        };
        if opts.output_names.is_none() {
            for a in &args {
                if a.ident.to_string().starts_with("output_") {
                    errs.push(&a.ident, "argument names starting with `output_` are reserved for unnamed outputs; name the outputs with output_names(...)");
                }
            }
        }
        if let Some(e) = errs.0 {
            return Err(e);
        }
        let name = opts
            .name
            .unwrap_or_else(|| LitStr::new(&sig.ident.to_string(), sig.ident.span()));
        Ok(Signature {
            name,
            args,
            outputs,
            tuple,
            output_names,
            error,
            cosmetic_of: opts.cosmetic_of,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(attr: &str, func: &str) -> Result<Signature, String> {
        // Parse errors of the attribute come first, as in the macro.
        let func: ItemFn = syn::parse_str(func).unwrap();
        let opts = Options::parse(attr.parse().unwrap()).map_err(|e| e.to_string())?;
        Signature::check(&func, opts).map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })
    }

    fn fail(attr: &str, func: &str) -> String {
        match check(attr, func) {
            Ok(_) => panic!("expected an error for #[op({attr})] {func}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_plain_op() {
        let s = check("", "fn f(x: u8, y: String) -> (u8, String) { (x, y) }").unwrap();
        assert_eq!(s.name.value(), "f");
        assert_eq!(s.output_names, ["output_0", "output_1"]);
        assert!(s.tuple && s.error.is_none());
        let s = check(
            "name = \"g\", output_names(a)",
            "fn f() -> Result<u8, E> { Ok(1) }",
        )
        .unwrap();
        assert_eq!(
            (s.name.value().as_str(), s.output_names.as_slice(), s.tuple),
            ("g", ["a".to_string()].as_slice(), false)
        );
        assert!(s.error.is_some());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = fail(
            "ignore(nope), new_default(z = 1), output_names(a, b)",
            "async fn f<T>(&self, (a, b): (u8, u8), r: &u8) -> u8 { 1 }",
        );
        for part in [
            "an op cannot be async",
            "an op cannot be generic: its name is its identity",
            "an op must be a free function (no `self`)",
            "op arguments must be plain names (`x: T` or `mut x: T`)",
            "op arguments are owned values; take `T`, not `&T`",
            "`ignore(nope)`: the op has no argument `nope`",
            "`new_default(z = ...)`: the op has no argument `z`",
            "output_names gives 2 names but the op returns 1 outputs",
        ] {
            assert!(e.contains(part), "missing {part:?} in: {e}");
        }
    }

    #[test]
    fn option_errors() {
        assert_eq!(
            fail("bogus", "fn f() {}"),
            "unknown op option; expected `name`, `output_names`, `ignore`, `new_default`, `renamed` or `cosmetic_of`"
        );
        assert_eq!(
            fail("name = \"\"", "fn f() {}"),
            "an op name cannot be empty"
        );
        assert!(fail("name = \"a\", name = \"b\"", "fn f() {}").contains("`name` is given twice"));
        let e = fail("output_names(x)", "fn f(x: u8) -> u8 { x }");
        assert_eq!(e, "output name `x` is also an argument name");
        let e = fail("", "fn f(output_0: u8) -> u8 { output_0 }");
        assert!(
            e.starts_with("argument names starting with `output_` are reserved"),
            "{e}"
        );
        let e = fail("ignore(x), new_default(x = 1)", "fn f(x: u8) -> u8 { x }");
        assert_eq!(e, "`x` cannot be both ignored and a new_default");
    }
}
