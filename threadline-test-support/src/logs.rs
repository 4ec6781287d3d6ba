//! A `tracing` subscriber that records every event, for tests that assert what was logged.
//!
//! ```
//! let recorder = threadline_test_support::logs::Recorder::default();
//! let guard = tracing::subscriber::set_default(recorder.clone());
//! tracing::warn!(header = "x-request-id", "dropped");
//! drop(guard);
//! assert_eq!(recorder.lines(), [format!(
//!     "WARN {}: message=dropped header=\"x-request-id\"", module_path!())]);
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// Records each event as `LEVEL target: field=value ...` (values in `Debug` form). Install it
/// with `tracing::subscriber::set_default` on the thread that runs the code under test (a
/// current-thread tokio test runs everything there).
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    /// The events recorded so far.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Line(String);
        impl tracing::field::Visit for Line {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                self.0.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
        let meta = event.metadata();
        let mut line = Line(format!("{} {}:", meta.level(), meta.target()));
        event.record(&mut line);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
