//! Debug logging: `[valet-sdk]`-prefixed `console.debug` lines when the
//! client was made with `debug: true`. Lines come from valet-core, which
//! never puts a token in one.

/// A logger.
#[derive(Debug, Clone, Copy)]
pub struct Logger {
    /// Whether to print.
    pub enabled: bool,
}

impl Logger {
    /// Prints a line when enabled.
    pub fn log(&self, line: &str) {
        if self.enabled {
            web_sys::console::debug_1(&format!("[valet-sdk] {line}").into());
        }
    }
}
