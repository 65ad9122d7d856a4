//! The GLUE TSV reader on arbitrary and mutated files: it reads them or names the bad line, never panics. (A
//! bounded fuzz run: `PROPTEST_CASES=200000 cargo test --release -p seedsweep-trainer --test tsv_fuzz`.)

use proptest::prelude::*;
use seedsweep_crds::Task;
use seedsweep_trainer::data::parse_tsv;
use std::path::Path;

/// A few well-formed rows of each task's train.tsv, in GLUE's layout (MRPC's with its byte-order mark).
fn sample(task: Task) -> &'static str {
    match task {
        Task::Mrpc => {
            "\u{feff}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n\
             1\t702876\t702977\tAmrozi accused his brother .\tReferring to him , Amrozi accused his brother .\n\
             0\t2108705\t2108831\tYucaipa owned Dominick 's .\tYucaipa bought Dominick 's in 1995 .\n"
        }
        Task::Rte => {
            "index\tsentence1\tsentence2\tlabel\n\
             0\tNo Weapons of Mass Destruction Found in Iraq Yet.\tWeapons of Mass Destruction Found in Iraq.\tnot_entailment\n\
             1\tA place of sorrow became a place of celebration.\tPope Benedict XVI is the new leader.\tentailment\n"
        }
        Task::Cola => {
            "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.\n\
             gj04\t0\t*\tOne more pseudo generalization or I'm giving up the.\n"
        }
        Task::Sst2 => {
            "sentence\tlabel\nhide new secretions from the parental units \t0\ncontains no wit \t0\n"
        }
    }
}

fn task() -> impl Strategy<Value = Task> {
    prop::sample::select(Task::ALL.to_vec())
}

#[test]
fn the_samples_are_read() {
    for task in Task::ALL {
        let examples = parse_tsv(task, Path::new("train.tsv"), sample(task)).unwrap();
        assert_eq!(examples.len(), 2, "{task:?}");
    }
}

proptest! {
    #[test]
    fn arbitrary_text_is_read_or_refused(task in task(), text in "\\PC{0,300}") {
        let _ = parse_tsv(task, Path::new("train.tsv"), &text);
    }

    /// Deleted, inserted and replaced bytes (tabs, newlines, labels, quotes) in a well-formed file: an error, when
    /// there is one, names a line of the file.
    #[test]
    fn a_mutated_file_is_read_or_its_bad_line_named(
        task in task(),
        edits in prop::collection::vec((any::<usize>(), 0usize..12, "[\t\n\"01*]{0,3}|\\PC{0,6}"), 1..5),
    ) {
        let mut text = sample(task).to_string();
        for (at, len, with) in &edits {
            let start = text.floor_char_boundary(at % (text.len() + 1));
            let end = text.floor_char_boundary((start + len).min(text.len()));
            text.replace_range(start..end, with);
        }
        if let Err(e) = parse_tsv(task, Path::new("train.tsv"), &text) {
            let message = e.to_string();
            prop_assert!(message.contains("train.tsv"), "{message}");
        }
    }
}
