//! Support for tests and benchmarks (real etcd processes). Not used by the
//! binaries; public so integration tests and benches can share it.

pub mod etcd;
