//! Which entries of a nested table of contents (or of nested headings) are the chapters: the
//! entries that hold the narration, at any depth. An entry whose own text (before its first
//! child) is no more than a heading and a few lines, and whose children hold chapters' worth
//! of text (or more than an hour in all), is a part: its children are the chapters, and it
//! names them. A lone top entry
//! (the book's title over everything) is a part too. Any other entry is a chapter, its
//! children's text read inside it. `--toc-depth N` puts the chapters at level N instead.
//!
//! Not responsible for where the entries are in the book (see `parts`).

/// The most text an entry may hold before its first child and still be a part (a heading, an
/// epigraph, a line of introduction): about a minute of narration.
pub(crate) const PART_OWN_MAX: usize = 1_000;

/// The least text a part's children hold on average, for them to be its chapters (about three
/// minutes of narration); below it they are the sections of a chapter.
pub(crate) const CHAPTER_MIN: usize = 3_000;

/// An entry holding more than this (about an hour of narration) under children is a part even
/// when its children are short: the table of contents offers a finer division than one chapter
/// an hour long.
pub(crate) const LONG_CHAPTER: usize = 60_000;

/// One entry, in reading order: its nesting depth (as the book gives it; only the order of
/// depths matters) and the characters between it and the next entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub(crate) depth: usize,
    pub(crate) own: usize,
}

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// It holds its children's chapters; its own text is read before its first one.
    Part,
    /// A chapter (its children's text, if any, inside it).
    Chapter,
    /// Inside a chapter above it.
    Inside,
}

/// Each node's parent (the nearest node before it with a smaller depth).
fn parents(nodes: &[Node]) -> Vec<Option<usize>> {
    let mut open: Vec<usize> = Vec::new();
    let mut out = Vec::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        while open.last().is_some_and(|&p| nodes[p].depth >= n.depth) {
            open.pop();
        }
        out.push(open.last().copied());
        open.push(i);
    }
    out
}

/// The role of each node; `depth` (1 = the top level) is `--toc-depth`.
pub(crate) fn roles(nodes: &[Node], depth: Option<usize>) -> Vec<Role> {
    let parent = parents(nodes);
    let mut children = vec![0usize; nodes.len()];
    let mut subtree: Vec<usize> = nodes.iter().map(|n| n.own).collect();
    for i in (0..nodes.len()).rev() {
        if let Some(p) = parent[i] {
            children[p] += 1;
            subtree[p] += subtree[i];
        }
    }
    // A lone top entry holding the whole book (its title) is a part whatever its own text.
    let roots = parent.iter().filter(|p| p.is_none()).count();
    let mut level = vec![1usize; nodes.len()];
    let mut role = vec![Role::Chapter; nodes.len()];
    for i in 0..nodes.len() {
        if let Some(p) = parent[i] {
            level[i] = level[p] + 1;
            if role[p] != Role::Part {
                role[i] = Role::Inside;
                continue;
            }
        }
        let part = children[i] > 0
            && match depth {
                Some(d) => level[i] < d,
                None if roots == 1 && parent[i].is_none() => true,
                None => {
                    let held = subtree[i] - nodes[i].own;
                    nodes[i].own <= PART_OWN_MAX
                        && (held >= CHAPTER_MIN * children[i] || held > LONG_CHAPTER)
                }
            };
        role[i] = if part { Role::Part } else { Role::Chapter };
    }
    role
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(spec: &[(usize, usize)]) -> Vec<Node> {
        spec.iter()
            .map(|&(depth, own)| Node { depth, own })
            .collect()
    }

    #[test]
    fn a_book_in_parts_has_its_chapters_at_the_second_level() {
        use Role::*;
        let book = nodes(&[(1, 20), (2, 30_000), (2, 25_000), (1, 15), (2, 40_000)]);
        assert_eq!(
            roles(&book, None),
            vec![Part, Chapter, Chapter, Part, Chapter]
        );
    }

    #[test]
    fn a_chapter_with_an_introduction_keeps_its_sections() {
        use Role::*;
        let book = nodes(&[(1, 4_000), (2, 9_000), (2, 8_000), (1, 12_000)]);
        assert_eq!(roles(&book, None), vec![Chapter, Inside, Inside, Chapter]);
    }

    #[test]
    fn short_sections_stay_in_their_chapter_and_a_title_over_all_is_a_part() {
        use Role::*;
        let book = nodes(&[(1, 100), (2, 500), (2, 400), (1, 5_000)]);
        assert_eq!(roles(&book, None), vec![Chapter, Inside, Inside, Chapter]);
        let mut huge = vec![Node { depth: 1, own: 20 }];
        huge.extend((0..40).map(|_| Node {
            depth: 2,
            own: 2_000,
        }));
        assert_eq!(roles(&huge, None)[..2], [Part, Chapter]);
        let titled = nodes(&[(1, 4_000), (2, 10_000), (2, 9_000)]);
        assert_eq!(roles(&titled, None), vec![Part, Chapter, Chapter]);
    }

    #[test]
    fn depth_can_be_chosen_and_levels_may_be_skipped() {
        use Role::*;
        // A title wrapping parts wrapping chapters with sections; a depth the book skips.
        let book = nodes(&[(1, 0), (2, 10), (4, 5_000), (5, 2_000), (2, 10), (4, 6_000)]);
        assert_eq!(
            roles(&book, None),
            vec![Part, Part, Chapter, Inside, Part, Chapter]
        );
        assert_eq!(
            roles(&book, Some(2)),
            vec![Part, Chapter, Inside, Inside, Chapter, Inside]
        );
        assert_eq!(
            roles(&book, Some(1)),
            vec![Chapter, Inside, Inside, Inside, Inside, Inside]
        );
        assert_eq!(
            roles(&book, Some(9)),
            vec![Part, Part, Part, Chapter, Part, Chapter]
        );
    }
}
