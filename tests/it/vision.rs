//! Integration tests for the vision room.
