//! The pages' common form: a document of headings, paragraphs, lists, tables and figures, rendered as one
//! self-contained HTML page (figures inlined as SVG) or as Markdown that references the figure files. The single
//! report ([`super::page`]) and the comparison ([`super::compare::page`]) each only say what their document holds.

use super::figures::Figure;
use std::fmt::Write;

pub enum Block {
    Heading(String),
    Para(String),
    List(Vec<String>),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// A figure by name, shown with its caption.
    Figure(&'static str),
}

pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> Block {
    Block::Table {
        header: header.iter().map(|h| h.to_string()).collect(),
        rows,
    }
}

/// A score as every page shows it.
pub fn score(x: f64) -> String {
    format!("{x:.4}")
}

/// `f` of the value, or a dash where there is none.
pub fn opt<T>(x: Option<T>, f: impl Fn(T) -> String) -> String {
    x.map_or("–".to_string(), f)
}

pub fn percent(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `**bold**` in the document's text as HTML.
fn inline_html(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in escape(s).split("**").enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<strong>{part}</strong>");
        } else {
            out.push_str(part);
        }
    }
    out
}

/// One self-contained HTML page titled `title`: styles inline, figures as inline SVG.
pub fn html(title: &str, document: Vec<Block>, figures: &[Figure]) -> String {
    let mut out = String::new();
    let title = escape(title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>\n\
         body {{ font-family: sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}\n\
         table {{ border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }}\n\
         th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }}\n\
         figure {{ margin: 1rem 0; }} figure svg {{ max-width: 100%; height: auto; }}\n\
         figcaption {{ font-size: 0.9rem; color: #444; }}\n</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    for block in document {
        match block {
            Block::Heading(h) => {
                let _ = writeln!(out, "<h2>{}</h2>", escape(&h));
            }
            Block::Para(p) => {
                let _ = writeln!(out, "<p>{}</p>", inline_html(&p));
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(out, "<li>{}</li>", inline_html(&item));
                }
                out.push_str("</ul>\n");
            }
            Block::Table { header, rows } => {
                out.push_str("<table>\n<tr>");
                for h in header {
                    let _ = write!(out, "<th>{}</th>", escape(&h));
                }
                out.push_str("</tr>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for cell in row {
                        let _ = write!(out, "<td>{}</td>", escape(&cell));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            }
            Block::Figure(name) => {
                if let Some(f) = figures.iter().find(|f| f.name == name) {
                    let _ = writeln!(
                        out,
                        "<figure id=\"{name}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
                        f.svg,
                        inline_html(&f.caption)
                    );
                }
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Markdown titled `title`, the figures referenced as the PNG files beside it.
pub fn markdown(title: &str, document: Vec<Block>, figures: &[Figure]) -> String {
    let mut out = format!("# {title}\n\n");
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    for block in document {
        match block {
            Block::Heading(h) => {
                let _ = writeln!(out, "## {h}\n");
            }
            Block::Para(p) => {
                let _ = writeln!(out, "{p}\n");
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "- {item}");
                }
                out.push('\n');
            }
            Block::Table { header, rows } => {
                let _ = writeln!(
                    out,
                    "| {} |",
                    header
                        .iter()
                        .map(|h| cell(h))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
                let _ = writeln!(out, "|{}", " --- |".repeat(header.len()));
                for row in rows {
                    let _ = writeln!(
                        out,
                        "| {} |",
                        row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
                    );
                }
                out.push('\n');
            }
            Block::Figure(name) => {
                if let Some(f) = figures.iter().find(|f| f.name == name) {
                    let _ = writeln!(out, "![{}]({name}.png)\n\n*{}*\n", f.title, f.caption);
                }
            }
        }
    }
    out
}
