//! The one integration-test binary: drives the real `webir-audit` binary
//! (and the library where a test must look inside a frame) on fixtures.

mod ceremony;
mod chain;
mod commands;
mod daemon;
mod exports;
mod followup;
mod fuzz;
mod harness;
mod hostile;
mod ingest;
mod layering;
mod load;
mod mail;
mod privacy;
mod register;
mod regulation;
mod render;
mod reports;
mod sample_data;
mod sampling;
mod smtp;
mod smtp_delivery;
mod years;
