//! Attack server (in progress).
