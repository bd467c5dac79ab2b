//! The AWS backend for Ember.
