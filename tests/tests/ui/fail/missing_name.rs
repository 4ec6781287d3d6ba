use threadline_axum::audited;

#[audited]
async fn publish() -> &'static str {
    "done"
}

fn main() {}
