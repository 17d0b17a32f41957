//! Limitations collected while importing, each said once with every MUD
//! ACE it comes from ("MUD ACEs cl0-frdev, cl1-frdev: ...").

#[derive(Default)]
pub struct Notes {
    /// Text, and the ACEs it comes from (none: the file as a whole), in
    /// the order first met.
    items: Vec<(String, Vec<String>)>,
}

impl Notes {
    pub fn add(&mut self, ace: &str, text: String) {
        match self.items.iter_mut().find(|(t, _)| *t == text) {
            Some((_, aces)) => {
                if !aces.iter().any(|a| a == ace) {
                    aces.push(ace.to_string());
                }
            }
            None => self.items.push((text, vec![ace.to_string()])),
        }
    }

    /// A limitation of the file as a whole, not of one ACE.
    pub fn general(&mut self, text: String) {
        if !self.items.iter().any(|(t, _)| *t == text) {
            self.items.push((text, Vec::new()));
        }
    }

    pub fn render(&self) -> Vec<String> {
        self.items
            .iter()
            .map(|(text, aces)| match aces.len() {
                0 => text.clone(),
                1 => format!("MUD ACE {}: {text}", aces[0]),
                _ => format!("MUD ACEs {}: {text}", aces.join(", ")),
            })
            .collect()
    }
}
