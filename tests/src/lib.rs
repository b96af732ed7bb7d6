//! end-to-end test harness
