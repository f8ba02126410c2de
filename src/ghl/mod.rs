//! The GoHighLevel API v2 client and the in-process GHL sandbox.
