//! aimate-tests: end-to-end tests that run the real `aimate` binary as a process.
