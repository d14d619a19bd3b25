//! Source: reading an EHR, whatever it is. FHIR files (`files`: a Bundle, NDJSON, a folder),
//! streamed in batches and passes (`stream`), fetched from a server to files first (`fetch`:
//! Bulk Data `$export` or paged search), and joined by patient, a partition at a time (`side`).

pub mod account;
pub(crate) mod contacts;
pub(crate) mod fetch;
pub(crate) mod files;
pub(crate) mod side;
pub(crate) mod stream;
