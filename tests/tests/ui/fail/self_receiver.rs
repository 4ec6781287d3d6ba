use threadline_axum::audited;

struct Posts;

impl Posts {
    #[audited("post.published")]
    async fn publish(&self) -> &'static str {
        "done"
    }
}

fn main() {}
