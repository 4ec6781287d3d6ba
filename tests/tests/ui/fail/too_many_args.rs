use axum::http::Method;
use threadline_axum::audited;

#[audited("post.published")]
async fn publish(
    _a: Method, _b: Method, _c: Method, _d: Method, _e: Method, _f: Method, _g: Method,
    _h: Method, _i: Method, _j: Method, _k: Method, _l: Method, _m: Method, _n: Method,
    _o: Method, _p: Method,
) -> &'static str {
    "done"
}

fn main() {}
