//! The `#[audited("name")]` attribute of Threadline.
//!
//! Use it through `threadline_axum::audited` or `threadline_actix::audited`; this crate only
//! holds the proc-macro. It rewrites
//!
//! ```text
//! #[audited("post.published")]
//! async fn publish(args..) -> R { body }
//! ```
//!
//! into a handler with one more, hidden, first argument (an extractor that reads the
//! request's audit context and the pool) that runs the original function, turns its output
//! into a response, records an `audit_actions` row with status `ok` for 2xx/3xx and `error`
//! otherwise, and returns the response. The router still accepts it as before; it returns the
//! framework's response type.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::{FnArg, ItemFn, LitStr, parse_macro_input};

/// Which web framework the expansion targets.
#[derive(Clone, Copy)]
enum Framework {
    Axum,
    Actix,
}

impl Framework {
    fn support(self) -> TokenStream2 {
        match self {
            Framework::Axum => quote!(::threadline_axum::__private),
            Framework::Actix => quote!(::threadline_actix::__private),
        }
    }

    /// Most arguments the framework's handler traits accept, hidden one included.
    const fn max_args(self) -> usize {
        match self {
            Framework::Axum => 16,
            Framework::Actix => 16,
        }
    }
}

/// `#[audited("post.published")]` for axum handlers (re-exported by threadline-axum).
#[proc_macro_attribute]
pub fn audited_axum(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = parse_macro_input!(item as ItemFn);
    expand_or_error(Framework::Axum, attr.into(), item)
}

/// `#[audited("post.published")]` for actix-web handlers (re-exported by threadline-actix).
#[proc_macro_attribute]
pub fn audited_actix(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = parse_macro_input!(item as ItemFn);
    expand_or_error(Framework::Actix, attr.into(), item)
}

/// The expansion, or the error next to the untouched function (so that the error is the only one).
fn expand_or_error(framework: Framework, attr: TokenStream2, item: ItemFn) -> TokenStream {
    match expand(framework, attr, &item) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let mut tokens = error.into_compile_error();
            tokens.extend(item.into_token_stream());
            tokens.into()
        }
    }
}

fn action_name(attr: TokenStream2) -> syn::Result<LitStr> {
    if attr.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[audited] needs an action name: #[audited(\"post.published\")]",
        ));
    }
    let lit: LitStr = syn::parse2(attr).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected one string literal naming the action, such as #[audited(\"post.published\")]",
        )
    })?;
    // The same rule the library applies at run time, so a name that compiles is recorded.
    threadline_core::validate_action_name(&lit.value())
        .map_err(|e| syn::Error::new(lit.span(), e.to_string()))?;
    Ok(lit)
}

fn expand(framework: Framework, attr: TokenStream2, item: &ItemFn) -> syn::Result<TokenStream2> {
    let name = action_name(attr)?;
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span,
            "#[audited] goes on an `async fn` handler",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            variadic,
            "#[audited] handlers cannot be variadic",
        ));
    }
    let mut outer_args = Vec::new();
    let mut call_args = Vec::new();
    for (i, arg) in sig.inputs.iter().enumerate() {
        match arg {
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new_spanned(
                    receiver,
                    "#[audited] handlers are free functions; `self` is not an extractor",
                ));
            }
            FnArg::Typed(typed) => {
                if i + 1 >= framework.max_args() {
                    return Err(syn::Error::new_spanned(
                        typed,
                        format!(
                            "#[audited] adds a hidden extractor, so a handler can take at most {} arguments",
                            framework.max_args() - 1
                        ),
                    ));
                }
                let ident = format_ident!("__threadline_arg{i}", span = Span::mixed_site());
                let attrs = &typed.attrs;
                let ty = &typed.ty;
                outer_args.push(quote!(#(#attrs)* #ident: #ty));
                call_args.push(ident);
            }
        }
    }

    let support = framework.support();
    let attrs = &item.attrs;
    let vis = &item.vis;
    let ident = &sig.ident;
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let mut inner_sig = sig.clone();
    inner_sig.ident = format_ident!("__threadline_audited_{}", ident);
    let inner_ident = &inner_sig.ident;
    let block = &item.block;
    let recorder = quote_spanned!(Span::mixed_site()=> __threadline_recorder);
    let output = quote_spanned!(Span::mixed_site()=> __threadline_output);

    Ok(quote! {
        #(#attrs)*
        #vis async fn #ident #generics (
            #recorder: #support::ActionRecorder,
            #(#outer_args),*
        ) -> #support::Response #where_clause {
            #[allow(clippy::too_many_arguments)]
            #inner_sig #block
            let #output = #inner_ident(#(#call_args),*).await;
            #recorder.finish(#name, #output).await
        }
    })
}
