// Package admin is the admin HTTP endpoint of a raftbench node and a Go
// client for it: status, Prometheus metrics, pprof, the state hash at an
// exact applied index, fault controls (partitions, message rules, slow
// disk — the transport/fault wrapper and cluster's slow disk, driven
// remotely), leadership transfer, membership changes and snapshots.
//
// See NewHandler for the routes and for how /hash answers exactly.
//
// # Security
//
// Fault controls, profiles and membership changes must not be open to a
// network: with a Token set every route but GET /status (which readiness
// probes read, and which tells nothing secret) needs "Authorization: Bearer
// <token>". CheckExposure refuses an address beyond loopback without a
// token; `raftbench node` calls it before listening. The token travels in
// clear over HTTP: on an untrusted network, put the endpoint behind TLS
// (a sidecar or a private network).
package admin
