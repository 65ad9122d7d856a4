//! What a person watching `seedsweep run` sees: live bars on a terminal (an overall bar and one line per running
//! trial), plain log lines otherwise.

use crate::engine::policy::{Decisions, RunState, StopReason};
use crate::engine::state::SweepState;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;

pub struct Console {
    live: Option<Live>,
}

struct Live {
    multi: MultiProgress,
    overall: ProgressBar,
    trials: BTreeMap<usize, ProgressBar>,
}

impl Console {
    pub fn new(state: &SweepState) -> Console {
        if !std::io::stdout().is_terminal() {
            return Console { live: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let overall = multi.add(ProgressBar::new(state.trials.len() as u64));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30}] {pos}/{len} trials done  {msg}  {elapsed} (ETA {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        overall.set_prefix(state.name.clone());
        Console {
            live: Some(Live {
                multi,
                overall,
                trials: BTreeMap::new(),
            }),
        }
    }

    pub fn log(&self, line: String) {
        match &self.live {
            Some(live) => {
                let _ = live.multi.println(line);
            }
            None => println!("{line}"),
        }
    }

    /// Scrape failures are normal at a trainer's start and end; only worth a line without live bars.
    pub fn debug(&self, line: String) {
        if self.live.is_none() && std::env::var_os("SEEDSWEEP_DEBUG").is_some() {
            println!("{line}");
        }
    }

    pub fn started(&mut self, state: &SweepState, i: usize) {
        let t = &state.plan.trials[i];
        let attempt = state.trials[i].attempts;
        let line = format!(
            "{}: started (weight-init {}, data-order {}{})",
            t.name,
            t.weight_init,
            t.data_order,
            if attempt > 1 {
                format!(", attempt {attempt}")
            } else {
                String::new()
            }
        );
        match &mut self.live {
            Some(live) => {
                let bar = live.multi.add(ProgressBar::new(1000));
                bar.set_style(
                    ProgressStyle::with_template("  {prefix:<28} [{bar:20}] {percent:>3}%  {msg}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(t.name.clone());
                live.trials.insert(i, bar);
                let _ = live.multi.println(line);
            }
            None => println!("{line}"),
        }
    }

    pub fn stopping(&mut self, state: &SweepState, i: usize, reason: &StopReason) {
        self.log(format!(
            "{}: {} — {}",
            state.plan.trials[i].name,
            reason.short(),
            reason.message()
        ));
    }

    pub fn ended(&mut self, state: &SweepState, i: usize) {
        let t = &state.trials[i];
        let name = &state.plan.trials[i].name;
        let line = match (&t.run, t.final_metrics) {
            (RunState::Completed, Some(m)) => {
                format!(
                    "{name}: trained to completion, {} {:.4}",
                    state.objective.metric,
                    m.get(state.objective.metric)
                )
            }
            (RunState::Stopped | RunState::Paused, _) => {
                format!("{name}: stopped after {} steps", t.steps_done)
            }
            (run, _) => format!("{name}: ended ({run:?})"),
        };
        if let Some(live) = &mut self.live
            && let Some(bar) = live.trials.remove(&i)
        {
            bar.finish_and_clear();
            live.multi.remove(&bar);
        }
        self.log(line);
    }

    pub fn update(&mut self, state: &SweepState, decisions: &Decisions) {
        let Some(live) = &mut self.live else { return };
        let done = decisions
            .verdicts
            .iter()
            .filter(|v| v.phase.is_terminal())
            .count();
        let count = |p| decisions.verdicts.iter().filter(|v| v.phase == p).count();
        use seedsweep_crds::sweep::TrialPhase::*;
        live.overall.set_position(done as u64);
        live.overall.set_message(format!(
            "finished {} · discarded {} · diverged {} · failed {} · running {}",
            count(Succeeded),
            count(Discarded),
            count(Diverged),
            count(Failed),
            count(Running) + count(AwaitingDecision)
        ));
        let metric = state.objective.metric;
        for (&i, bar) in &live.trials {
            let t = &state.trials[i];
            if let Some(total) = t.total_steps.filter(|&n| n > 0) {
                bar.set_position(t.steps_done * 1000 / total);
            }
            let latest = t
                .evals
                .last()
                .map(|e| format!("{metric} {:.4}", e.score))
                .unwrap_or_default();
            let p = &state.plan.trials[i];
            bar.set_message(format!(
                "wi {} do {}  {latest}",
                p.weight_init, p.data_order
            ));
        }
    }

    pub fn finish(&mut self) {
        if let Some(live) = self.live.take() {
            for bar in live.trials.values() {
                bar.finish_and_clear();
            }
            live.overall.finish();
        }
    }
}
