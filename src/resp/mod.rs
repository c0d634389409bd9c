//! RESP2, the Redis client protocol (placeholder: being written).
