//! Integration tests for the evidence room.
