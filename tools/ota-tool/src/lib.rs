//! The `ota` workstation tool: keys and signatures, a local stand-in for AWS IoT Jobs + MQTT
//! Streams with an embedded MQTT broker, and job management.

pub mod admin;
pub mod bench;
pub mod broker;
pub mod cloud;
pub mod demo;
pub mod device;
pub mod http;
pub mod keys;
pub mod module_sim;
pub mod serve;
