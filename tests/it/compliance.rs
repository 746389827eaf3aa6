//! Integration tests for the compliance room.
