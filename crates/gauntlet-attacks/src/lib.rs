//! Attack engine (in progress).
