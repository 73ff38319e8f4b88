//! Net's two NetDB models (tasks and memories, from net-mesh's `cortex` module), written
//! as foldkit states, for the side-by-side benches in `benches/net_side_by_side.rs`.
//!
//! The rows carry the same fields as Net's `Task` and `Memory`, and the events carry
//! what Net's payloads carry (`TaskCreatedPayload`, `TaskCompletedPayload`,
//! `MemoryStoredPayload`), so both sides fold the same events into the same rows. Where
//! foldkit can index a field that Net's workloads filter on, it does (`status`, each
//! element of `tags`): that is how a foldkit user would declare these models, and the
//! planner still scans when a scan is cheaper.

use foldkit::prelude::*;

/// A task's status (Net's `TaskStatus`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Created, not completed.
    Pending,
    /// Completed.
    Completed,
}

/// A task (Net's `Task`).
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Task {
    /// The task's id.
    #[entity(id)]
    pub id: u64,
    /// Its title.
    pub title: String,
    /// Pending or completed.
    #[entity(index)]
    pub status: TaskStatus,
    /// When it was created (ns).
    pub created_ns: u64,
    /// When it last changed (ns).
    pub updated_ns: u64,
}

/// The tasks log (Net's task payloads).
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
pub enum TaskEvent {
    /// A task was created.
    Created {
        /// Its id.
        id: u64,
        /// Its title.
        title: String,
        /// When (ns).
        now_ns: u64,
    },
    /// A task was completed.
    Completed {
        /// Its id.
        id: u64,
        /// When (ns).
        now_ns: u64,
    },
}

/// The tasks state (Net's `TasksState`).
#[derive(State, Default, Serialize, Deserialize)]
#[state(event = TaskEvent)]
pub struct Tasks {
    /// Every task.
    pub tasks: Table<Task>,
}

impl Apply<TaskEvent> for Tasks {
    fn apply(&mut self, event: TaskEvent, _: &Meta) -> Result<(), FoldError> {
        match event {
            TaskEvent::Created { id, title, now_ns } => {
                self.tasks.insert(Task {
                    id,
                    title,
                    status: TaskStatus::Pending,
                    created_ns: now_ns,
                    updated_ns: now_ns,
                });
            }
            TaskEvent::Completed { id, now_ns } => {
                self.tasks.update(&id, |t| {
                    t.status = TaskStatus::Completed;
                    t.updated_ns = now_ns;
                });
            }
        }
        Ok(())
    }
}

/// A memory (Net's `Memory`).
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Memory {
    /// The memory's id.
    #[entity(id)]
    pub id: u64,
    /// Its content.
    pub content: String,
    /// Its tags, each indexed.
    #[entity(index)]
    pub tags: Vec<String>,
    /// Where it came from.
    pub source: String,
    /// When it was created (ns).
    pub created_ns: u64,
    /// When it last changed (ns).
    pub updated_ns: u64,
    /// Whether it is pinned.
    pub pinned: bool,
}

/// The memories log (Net's `MemoryStoredPayload`).
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
pub enum MemoryEvent {
    /// A memory was stored (inserted, or its content, tags and source replaced).
    Stored {
        /// Its id.
        id: u64,
        /// Its content.
        content: String,
        /// Its tags.
        tags: Vec<String>,
        /// Its source.
        source: String,
        /// When (ns).
        now_ns: u64,
    },
}

/// The memories state (Net's `MemoriesState`).
#[derive(State, Default, Serialize, Deserialize)]
#[state(event = MemoryEvent)]
pub struct Memories {
    /// Every memory.
    pub memories: Table<Memory>,
}

impl Apply<MemoryEvent> for Memories {
    fn apply(&mut self, event: MemoryEvent, _: &Meta) -> Result<(), FoldError> {
        let MemoryEvent::Stored {
            id,
            content,
            tags,
            source,
            now_ns,
        } = event;
        // Net's upsert: a stored memory keeps its `pinned` flag and creation time.
        let make = || Memory {
            id,
            content: String::new(),
            tags: Vec::new(),
            source: String::new(),
            created_ns: now_ns,
            updated_ns: now_ns,
            pinned: false,
        };
        self.memories.upsert(&id, make, |m| {
            m.content = content;
            m.tags = tags;
            m.source = source;
            m.updated_ns = now_ns;
        });
        Ok(())
    }
}

/// The events Net's bench populates its tasks with: task `i + 1` created at `i`, and
/// every third one (`i % 3 == 0`) completed.
pub fn task_events(n: usize) -> Vec<TaskEvent> {
    let mut events = Vec::with_capacity(n + n / 3 + 1);
    for i in 0..n {
        let id = (i + 1) as u64;
        events.push(TaskEvent::Created {
            id,
            title: format!("task-{i}"),
            now_ns: i as u64,
        });
        if i % 3 == 0 {
            events.push(TaskEvent::Completed {
                id,
                now_ns: i as u64,
            });
        }
    }
    events
}

/// The events Net's bench populates its memories with: memory `i + 1`, tagged `alpha`
/// when `i` is even and `beta` when odd.
pub fn memory_events(n: usize) -> Vec<MemoryEvent> {
    (0..n)
        .map(|i| MemoryEvent::Stored {
            id: (i + 1) as u64,
            content: format!("content-{i}"),
            tags: vec![if i % 2 == 0 { "alpha" } else { "beta" }.to_string()],
            source: "src".to_string(),
            now_ns: i as u64,
        })
        .collect()
}

/// A state folded from `events` in memory (no log), as a fold would.
pub fn folded<S: Default + Apply<E>, E>(events: impl IntoIterator<Item = E>) -> S {
    let mut state = S::default();
    for (seq, event) in (1..).zip(events) {
        state
            .apply(event, &Meta::new(seq, 0, 1))
            .expect("the models' folds do not fail");
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_fold_like_nets_populate_loop() {
        let state: Tasks = folded(task_events(10));
        assert_eq!(state.tasks.len(), 10);
        let done = Task::filter().where_status(TaskStatus::Completed);
        // i = 0, 3, 6, 9 are completed: ids 1, 4, 7, 10.
        assert_eq!(
            state
                .tasks
                .query()
                .where_status(TaskStatus::Completed)
                .ids(),
            [1, 4, 7, 10]
        );
        assert_eq!(state.tasks.count_where(&done), 4);
        assert_eq!(state.tasks.get(&4).map(|t| t.updated_ns), Some(3));
    }

    #[test]
    fn memories_upsert_keeps_creation_time_and_pin() {
        let mut state: Memories = folded(memory_events(4));
        state.memories.update(&2, |m| m.pinned = true);
        state
            .apply(
                MemoryEvent::Stored {
                    id: 2,
                    content: "new".into(),
                    tags: vec!["gamma".into()],
                    source: "src".into(),
                    now_ns: 99,
                },
                &Meta::new(5, 0, 1),
            )
            .expect("apply");
        let m = state.memories.get(&2).expect("memory 2");
        assert_eq!((m.created_ns, m.updated_ns, m.pinned), (1, 99, true));
        assert_eq!(
            state.memories.query().where_tags_contains("alpha").ids(),
            [1, 3]
        );
        assert_eq!(
            state.memories.query().where_tags_contains("gamma").ids(),
            [2]
        );
    }
}
