//! The peer wire protocol (placeholder: being written).
