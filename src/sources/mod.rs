//! Sources: where data enters (the register's CSV export, FHIR files and servers).
//! Each turns its input into domain types; nothing downstream sees CSV or FHIR.

pub(crate) mod ehr;
pub mod lines;
pub mod register;
