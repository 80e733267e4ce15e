//! `#[srpc::service]`: a typed srpc service from a trait. Use it through the `srpc` facade
//! (`srpc::service`); the generated code names `::srpc` paths.
//!
//! For
//!
//! ```text
//! #[srpc::service(name = "com.acme.Calc")]
//! pub trait Calc {
//!     async fn add(&self, a: i64, b: i64) -> Result<i64, HandlerError>;
//!     async fn echo(&self, text: String) -> Result<String, HandlerError>;
//! }
//! ```
//!
//! it writes, beside the trait (its `async fn`s become `fn … -> impl Future + Send`, and
//! the trait requires `Send + Sync + 'static`):
//!
//! ```text
//! /// Registers every method of `Calc` on `server`, as `com.acme.Calc.<method>`.
//! pub fn serve_calc<S: Calc>(server: srpc::rpc::Server, service: S) -> srpc::rpc::Server;
//!
//! /// A typed client of `Calc` over any `srpc::typed::Caller` (an XClient, or one connection).
//! pub struct CalcClient<C> { … }
//! impl<C: srpc::typed::Caller> CalcClient<C> {
//!     pub const SERVICE: &'static str = "com.acme.Calc";
//!     pub const METHODS: &'static [&'static str] = &["add", "echo"];
//!     pub fn new(caller: C) -> Self;
//!     pub async fn add(&self, a: i64, b: i64) -> Result<i64, C::Error>;
//!     pub async fn echo(&self, text: String) -> Result<String, C::Error>;
//! }
//! ```
//!
//! On the wire a method with no argument sends `()`, with one the argument itself, with more
//! a tuple of them: the same as an untyped `Server::handle` taking `()`, `T` or `(A, B)`, so
//! typed and untyped peers call each other.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{
    Error, FnArg, GenericArgument, Ident, ItemTrait, LitStr, Pat, PathArguments, ReturnType,
    TraitItem, Type,
};

/// Makes a trait a typed srpc service: see the crate documentation.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// One method of the trait.
struct Method {
    name: Ident,
    args: Vec<(Ident, Type)>,
    ok: Type,
}

fn expand(attr: Tokens, item: Tokens) -> syn::Result<Tokens> {
    let mut service_name: Option<LitStr> = None;
    if !attr.is_empty() {
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                service_name = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error("expected `name = \"com.acme.Service\"`"))
            }
        });
        syn::parse::Parser::parse2(parser, attr)?;
    }
    let mut item: ItemTrait = syn::parse2(item)?;
    if !item.generics.params.is_empty() {
        return Err(Error::new(
            item.generics.span(),
            "a service trait cannot be generic: its methods are called by name over the network",
        ));
    }
    let trait_name = item.ident.clone();
    let name = service_name
        .map(|n| n.value())
        .unwrap_or_else(|| trait_name.to_string());
    let mut methods = Vec::new();
    for entry in &mut item.items {
        let TraitItem::Fn(function) = entry else {
            return Err(Error::new(
                entry.span(),
                "a service trait holds only `async fn` methods",
            ));
        };
        methods.push(method(function)?);
        // `async fn m(&self, …) -> R` becomes `fn m(&self, …) -> impl Future<Output = R> + Send`.
        let output = match &function.sig.output {
            ReturnType::Type(_, ty) => ty.clone(),
            ReturnType::Default => unreachable_return()?,
        };
        function.sig.asyncness = None;
        function.sig.output = syn::parse_quote! {
            -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
        };
    }
    if methods.is_empty() {
        return Err(Error::new(
            trait_name.span(),
            "a service trait needs at least one `async fn` method",
        ));
    }
    item.supertraits
        .push(syn::parse_quote!(::core::marker::Send));
    item.supertraits
        .push(syn::parse_quote!(::core::marker::Sync));
    item.supertraits.push(syn::parse_quote!('static));
    if item.colon_token.is_none() {
        item.colon_token = Some(Default::default());
    }

    let vis = &item.vis;
    let snake = snake_case(&trait_name.to_string());
    let serve = format_ident!("serve_{}", snake);
    let client = format_ident!("{}Client", trait_name);
    let mut method_names: Vec<String> = methods.iter().map(|m| m.name.to_string()).collect();
    method_names.sort();

    let registrations = methods.iter().map(|m| {
        let method = &m.name;
        let wire = format!("{name}.{method}");
        let names: Vec<&Ident> = m.args.iter().map(|(n, _)| n).collect();
        let types: Vec<&Type> = m.args.iter().map(|(_, t)| t).collect();
        let (pattern, ty) = match m.args.len() {
            0 => (quote!(()), quote!(())),
            1 => (quote!(#(#names)*), quote!(#(#types)*)),
            _ => (quote!((#(#names),*)), quote!((#(#types),*))),
        };
        quote! {
            let server = {
                let service = service.clone();
                server.handle(#wire, move |#pattern: #ty| {
                    let service = service.clone();
                    async move {
                        service
                            .#method(#(#names),*)
                            .await
                            .map_err(::core::convert::Into::<::srpc::rpc::HandlerError>::into)
                    }
                })
            };
        }
    });

    let client_methods = methods.iter().map(|m| {
        let method = &m.name;
        let wire = format!("{name}.{method}");
        let names: Vec<&Ident> = m.args.iter().map(|(n, _)| n).collect();
        let args = m.args.iter().map(|(n, t)| quote!(#n: #t));
        let request = match m.args.len() {
            0 => quote!(&()),
            1 => quote!(&#(#names)*),
            _ => quote!(&(#(#names),*)),
        };
        let ok = &m.ok;
        let doc = format!("Calls `{wire}`.");
        quote! {
            #[doc = #doc]
            pub async fn #method(&self, #(#args),*) -> ::core::result::Result<#ok, C::Error> {
                ::srpc::typed::Caller::call(&self.caller, #wire, #request).await
            }
        }
    });

    let serve_doc =
        format!("Registers every method of [`{trait_name}`] on `server`, as `{name}.<method>`.");
    let client_doc = format!(
        "A typed client of `{name}` over any [`srpc::typed::Caller`](::srpc::typed::Caller): \
         an `XClient`, or one connection (`srpc::typed::Connection`)."
    );
    Ok(quote! {
        #item

        #[doc = #serve_doc]
        #vis fn #serve<S: #trait_name>(
            server: ::srpc::rpc::Server,
            service: S,
        ) -> ::srpc::rpc::Server {
            let service = ::std::sync::Arc::new(service);
            #(#registrations)*
            server
        }

        #[doc = #client_doc]
        #[derive(Debug, Clone)]
        #vis struct #client<C> {
            caller: C,
        }

        impl<C: ::srpc::typed::Caller> #client<C> {
            /// The service name: methods are called as `<SERVICE>.<method>`.
            pub const SERVICE: &'static str = #name;
            /// The method names, sorted (as the provider URL's `methods` lists them).
            pub const METHODS: &'static [&'static str] = &[#(#method_names),*];

            /// A client calling through `caller`.
            pub fn new(caller: C) -> Self {
                #client { caller }
            }

            /// The caller it calls through.
            pub fn caller(&self) -> &C {
                &self.caller
            }

            #(#client_methods)*
        }
    })
}

fn unreachable_return() -> syn::Result<Box<Type>> {
    Err(Error::new(
        Span::call_site(),
        "a service method returns a Result",
    ))
}

/// Checks one method's shape: `async fn name(&self, a: A, …) -> Result<T, E>`.
fn method(function: &syn::TraitItemFn) -> syn::Result<Method> {
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        return Err(Error::new(
            sig.fn_token.span(),
            "service methods are `async fn`: write `async fn name(&self, …) -> Result<T, HandlerError>`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new(
            sig.generics.span(),
            "a service method cannot be generic: its types are what goes over the network",
        ));
    }
    if function.default.is_some() {
        return Err(Error::new(
            function.span(),
            "a service method has no default body: the server's type implements it",
        ));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(receiver))
            if receiver.reference.is_some() && receiver.mutability.is_none() => {}
        other => {
            let span = other.map_or(sig.ident.span(), Spanned::span);
            return Err(Error::new(
                span,
                "a service method takes `&self` first (calls run concurrently on one service)",
            ));
        }
    }
    let mut args = Vec::new();
    for input in inputs {
        let FnArg::Typed(typed) = input else {
            return Err(Error::new(input.span(), "only `&self` may be a receiver"));
        };
        let Pat::Ident(ident) = &*typed.pat else {
            return Err(Error::new(
                typed.pat.span(),
                "name each argument (`text: String`): patterns are not supported",
            ));
        };
        if let Type::Reference(reference) = &*typed.ty {
            return Err(Error::new(
                reference.span(),
                "arguments are owned serde types (`String`, not `&str`): they are decoded from the request",
            ));
        }
        args.push((ident.ident.clone(), (*typed.ty).clone()));
    }
    let ok = result_ok(&sig.output).ok_or_else(|| {
        Error::new(
            match &sig.output {
                ReturnType::Type(_, ty) => ty.span(),
                ReturnType::Default => sig.ident.span(),
            },
            "a service method returns `Result<T, E>` (E converts into srpc::rpc::HandlerError, \
             e.g. HandlerError itself or String)",
        )
    })?;
    Ok(Method {
        name: sig.ident.clone(),
        args,
        ok,
    })
}

/// `T` of a `…Result<T, E>` return type.
fn result_ok(output: &ReturnType) -> Option<Type> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let Type::Path(path) = &**ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return None;
    };
    let mut types = generics.args.iter().filter_map(|a| match a {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    let ok = types.next()?;
    types.next()?;
    Some(ok)
}

/// `CalcService` → `calc_service`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
