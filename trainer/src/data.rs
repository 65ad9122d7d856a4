//! GLUE TSV readers and batching with dynamic padding.

use crate::tokenize::Encoded;
use seedsweep_crds::Task;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{} has no examples", path.display())]
    Empty { path: PathBuf },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub text_a: String,
    pub text_b: Option<String>,
    pub label: i64,
}

/// Column layout of a task's files: number of fields, the header's first field (None: no header), and the positions
/// of text a, text b and the label.
struct Layout {
    fields: usize,
    header: Option<&'static str>,
    text_a: usize,
    text_b: Option<usize>,
    label: usize,
}

fn layout(task: Task) -> Layout {
    match task {
        Task::Mrpc => Layout {
            fields: 5,
            header: Some("Quality"),
            text_a: 3,
            text_b: Some(4),
            label: 0,
        },
        Task::Rte => Layout {
            fields: 4,
            header: Some("index"),
            text_a: 1,
            text_b: Some(2),
            label: 3,
        },
        Task::Cola => Layout {
            fields: 4,
            header: None,
            text_a: 3,
            text_b: None,
            label: 1,
        },
        Task::Sst2 => Layout {
            fields: 2,
            header: Some("sentence"),
            text_a: 0,
            text_b: None,
            label: 1,
        },
    }
}

/// Label ids as HF's GLUE processors assign them: RTE's label list is `["entailment", "not_entailment"]`, so the
/// positive class (1) of its F1 is `not_entailment`.
fn parse_label(task: Task, s: &str) -> Option<i64> {
    match (task, s) {
        (Task::Rte, "entailment") => Some(0),
        (Task::Rte, "not_entailment") => Some(1),
        (Task::Rte, _) => None,
        (_, "0") => Some(0),
        (_, "1") => Some(1),
        _ => None,
    }
}

/// Parses a task's TSV text. Fields are split on tabs only: GLUE files are unquoted and contain bare `"`.
pub fn parse_tsv(task: Task, path: &Path, text: &str) -> Result<Vec<Example>, DataError> {
    let err = |line: usize, message: String| DataError::Line {
        path: path.to_path_buf(),
        line,
        message,
    };
    let layout = layout(task);
    // MRPC's header starts with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<&str> = text.split('\n').collect();
    // A final newline leaves an empty last piece; CoLA's dev.tsv has none, so it is optional.
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let mut examples = Vec::new();
    for (i, raw) in lines.into_iter().enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if i == 0
            && let Some(header) = layout.header
        {
            let first = line.split('\t').next().unwrap_or("");
            if first != header {
                return Err(err(
                    line_no,
                    format!(
                        "expected the {} header starting with {header:?}, found {:?}",
                        task.glue_dir(),
                        first.chars().take(40).collect::<String>()
                    ),
                ));
            }
            continue;
        }
        if line.is_empty() {
            return Err(err(line_no, "empty line".into()));
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != layout.fields {
            return Err(err(
                line_no,
                format!(
                    "expected {} tab-separated fields for {}, found {}",
                    layout.fields,
                    task.glue_dir(),
                    fields.len()
                ),
            ));
        }
        let label = parse_label(task, fields[layout.label]).ok_or_else(|| {
            err(
                line_no,
                format!(
                    "invalid label {:?} in field {}",
                    fields[layout.label],
                    layout.label + 1
                ),
            )
        })?;
        examples.push(Example {
            text_a: fields[layout.text_a].to_string(),
            text_b: layout.text_b.map(|b| fields[b].to_string()),
            label,
        });
    }
    if examples.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(examples)
}

/// Reads `<data_dir>/<split>.tsv`, keeping the first `subset` examples when given. The whole file is parsed so a
/// malformed line is reported even past the subset.
pub fn read_split(
    task: Task,
    data_dir: &Path,
    split: &str,
    subset: Option<usize>,
) -> Result<Vec<Example>, DataError> {
    let path = data_dir.join(format!("{split}.tsv"));
    let text = std::fs::read_to_string(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    let mut examples = parse_tsv(task, &path, &text)?;
    if let Some(k) = subset {
        examples.truncate(k);
    }
    Ok(examples)
}

/// A batch ready for the model, on its device.
pub struct Batch {
    pub ids: Tensor,
    pub token_types: Tensor,
    /// `None` when no example in the batch is padded, which lets attention skip masking.
    pub mask: Option<Tensor>,
    pub labels: Tensor,
    pub size: usize,
    /// Sequence length the batch was padded to.
    pub width: usize,
}

/// Pads the examples at `indices` to the longest of them (or to `pad_to`, for the fixed-length baseline).
pub fn collate(
    encoded: &[Encoded],
    labels: &[i64],
    indices: &[usize],
    pad_id: i64,
    pad_to: Option<usize>,
    device: Device,
) -> Batch {
    let longest = indices
        .iter()
        .map(|&i| encoded[i].ids.len())
        .max()
        .unwrap_or(0);
    let width = pad_to.map_or(longest, |p| p.max(longest));
    let n = indices.len();
    let mut ids = vec![pad_id; n * width];
    let mut types = vec![0i64; n * width];
    let mut mask = vec![0i64; n * width];
    for (row, &i) in indices.iter().enumerate() {
        let e = &encoded[i];
        let start = row * width;
        ids[start..start + e.ids.len()].copy_from_slice(&e.ids);
        types[start..start + e.token_types.len()].copy_from_slice(&e.token_types);
        mask[start..start + e.ids.len()].fill(1);
    }
    let padded = indices.iter().any(|&i| encoded[i].ids.len() < width);
    let shape = [n as i64, width as i64];
    let to = |v: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
    Batch {
        ids: to(&ids),
        token_types: to(&types),
        mask: padded.then(|| to(&mask)),
        labels: Tensor::from_slice(&indices.iter().map(|&i| labels[i]).collect::<Vec<_>>())
            .to_kind(Kind::Int64)
            .to_device(device),
        size: n,
        width,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(task: Task, text: &str) -> Result<Vec<Example>, DataError> {
        parse_tsv(task, Path::new("x/train.tsv"), text)
    }

    #[test]
    fn mrpc_with_bom_and_bare_quotes() {
        let text = "\u{feff}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\the said \" the\tb \"\n0\t3\t4\tc\td\n";
        let ex = parse(Task::Mrpc, text).unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].text_a, "he said \" the");
        assert_eq!(ex[0].text_b.as_deref(), Some("b \""));
        assert_eq!((ex[0].label, ex[1].label), (1, 0));
    }

    #[test]
    fn cola_without_header_or_final_newline() {
        let ex = parse(
            Task::Cola,
            "gj04\t1\t\tThe sailors rode .\ngj04\t0\t*\tRode .",
        )
        .unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[1].text_a, "Rode .");
        assert_eq!(ex[1].label, 0);
        assert!(ex[0].text_b.is_none());
    }

    #[test]
    fn rte_string_labels_and_sst2_trailing_space() {
        let rte = parse(
            Task::Rte,
            "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tnot_entailment\n1\tc\td\tentailment\n",
        )
        .unwrap();
        assert_eq!((rte[0].label, rte[1].label), (1, 0));
        let sst = parse(Task::Sst2, "sentence\tlabel\nit 's good \t1\n").unwrap();
        assert_eq!(sst[0].text_a, "it 's good ");
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let e = parse(Task::Sst2, "sentence\tlabel\ngood\t1\nbad line\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x/train.tsv:3: expected 2 tab-separated fields for SST-2, found 1"
        );
        let e = parse(
            Task::Rte,
            "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x/train.tsv:2: invalid label \"maybe\""),
            "{e}"
        );
        let e = parse(Task::Mrpc, "wrong\theader\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x/train.tsv:1: expected the MRPC header"),
            "{e}"
        );
        let e = parse(Task::Sst2, "sentence\tlabel\na\t1\n\nb\t0\n").unwrap_err();
        assert_eq!(e.to_string(), "x/train.tsv:3: empty line");
        assert!(matches!(
            parse(Task::Sst2, "sentence\tlabel\n"),
            Err(DataError::Empty { .. })
        ));
    }

    #[test]
    fn collate_pads_to_the_longest_in_the_batch() {
        let enc = vec![
            Encoded {
                ids: vec![101, 5, 102],
                token_types: vec![0, 0, 0],
            },
            Encoded {
                ids: vec![101, 5, 6, 102, 7, 102],
                token_types: vec![0, 0, 0, 0, 1, 1],
            },
        ];
        let b = collate(&enc, &[1, 0], &[0, 1], 0, None, Device::Cpu);
        assert_eq!(b.width, 6);
        assert_eq!(b.ids.size(), vec![2, 6]);
        let mask = Vec::<i64>::try_from(b.mask.unwrap().flatten(0, -1)).unwrap();
        assert_eq!(mask, vec![1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
        let one = collate(&enc, &[1, 0], &[0], 0, None, Device::Cpu);
        assert!(one.mask.is_none(), "an unpadded batch needs no mask");
        assert_eq!(
            collate(&enc, &[1, 0], &[0], 0, Some(8), Device::Cpu).width,
            8
        );
    }
}
