//! The seed statistics a sweep reports in its status (computed by the operator's engine).
