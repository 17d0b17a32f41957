//! The README's command examples (`$ iotfence ...` lines in a code block,
//! followed by what the command prints), for the tests that run them.

use std::{iter::Peekable, str::Lines};

/// The next example of `$ iotfence <command> ` in `lines`: the rest of its
/// command line and the output shown under it, up to the next command or
/// the end of the block. `lines` is left after the output.
pub fn next<'a>(lines: &mut Peekable<Lines<'a>>, command: &str) -> Option<(&'a str, String)> {
    let prefix = format!("$ iotfence {command} ");
    let args = lines
        .by_ref()
        .find_map(|l| l.strip_prefix(prefix.as_str()))?;
    let mut want = String::new();
    while let Some(l) = lines.next_if(|l| !l.starts_with("$ ") && !l.starts_with("```")) {
        want.push_str(l);
        want.push('\n');
    }
    Some((args, want))
}
