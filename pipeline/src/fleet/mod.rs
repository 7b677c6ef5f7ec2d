//! Many workers on many machines sharing one PostgreSQL store and one object store:
//! [`enqueue`] adds jobs, [`worker`] claims and completes them through the [`queue`]. Workers
//! may die at any moment; leases expire, fencing keeps a late worker from writing, and every
//! object version ends with exactly one result.

pub mod enqueue;
pub mod queue;
pub mod worker;
