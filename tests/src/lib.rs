//! Cross-crate integration tests for foldkit. Helpers shared by the test targets live here.
