use threadline_axum::audited;

#[audited("")]
async fn empty() -> &'static str {
    "done"
}

#[audited("post\npublished")]
async fn control() -> &'static str {
    "done"
}

#[audited("post.published", category = "content")]
async fn extra() -> &'static str {
    "done"
}

fn main() {}
