//! GUID partition table: reading, validating, crash-safe writing and A/B slot attributes.
