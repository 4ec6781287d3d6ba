use threadline_axum::audited;

#[audited("post.published")]
fn publish() -> &'static str {
    "done"
}

fn main() {}
