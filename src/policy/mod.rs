//! Policies: files of checks that audits evaluate against nodes.
