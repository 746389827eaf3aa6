//! Integration tests for the recording room.
