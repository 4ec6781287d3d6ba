use threadline_axum::audited;

#[audited(post.published)]
async fn publish() -> &'static str {
    "done"
}

fn main() {}
