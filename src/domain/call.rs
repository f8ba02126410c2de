//! A phone call told by its status changes (JivoChat `call_event`), which may arrive in any
//! order and more than once: what one status says ([`CallFacts`]), what all the statuses seen
//! say together ([`CallProgress`], the same whatever their order) and what the call therefore
//! needs ([`CallOutcome`]: nothing yet, a call-back, or nothing more because it happened).

use serde::{Deserialize, Serialize};

/// Who called whom (JivoChat `call.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// The visitor asked to be called back from the widget: Jivo rings an agent, then the visitor.
    Callback,
    /// The visitor called in.
    Incoming,
    /// An agent called out.
    Outgoing,
}

/// A status a call reports as it changes (JivoChat `call.status`), ordered by how far along
/// the call is: `start` < `agent_connected` < `client_connected` < `error` < `end`. The two
/// last are final; should both arrive, `end` ranks higher (chosen: the call's note then shows
/// how it ended rather than a failure JivoChat reported on the way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Start,
    AgentConnected,
    ClientConnected,
    Error,
    End,
}

impl CallStatus {
    /// The tool's name for a status, `None` for one formbridge does not know.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "start" => Self::Start,
            "agent_connected" => Self::AgentConnected,
            "client_connected" => Self::ClientConnected,
            "error" => Self::Error,
            "end" => Self::End,
            _ => return None,
        })
    }
}

impl CallKind {
    /// The tool's name for a call type, `None` for one formbridge does not know.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "callback" => Self::Callback,
            "incoming" => Self::Incoming,
            "outgoing" => Self::Outgoing,
            _ => return None,
        })
    }
}

/// What one delivery says of its call, stored with its plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallFacts {
    /// The call among the source's calls, `<source>:<call id>`: its note and task carry it as
    /// their marker, so every status of the call finds them.
    pub key: String,
    pub kind: CallKind,
    pub status: CallStatus,
}

/// What the statuses of one call seen so far say together. Each flag only ever turns on, and
/// merging is an OR, so the result is the same whatever order the statuses came in, and a
/// repeated status changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallProgress {
    /// A callback request: someone must call the visitor until the call has happened.
    callback: bool,
    /// Both sides were on the line: `client_connected`, or `agent_connected` on an incoming
    /// call (the visitor rang, so they were on the line already; chosen, Jivo does not say
    /// whether it sends `client_connected` for incoming calls).
    connected: bool,
    /// `end` was seen.
    ended: bool,
    /// `error` was seen.
    failed: bool,
}

/// What a call needs, given its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// Under way, nothing asked for yet (an incoming or outgoing call not ended).
    UnderWay,
    /// Someone must call the visitor back: a callback request not made yet, a call that
    /// failed (`error`, even after connecting: a dropped call), or one that ended without
    /// both sides connecting (missed).
    CallBack,
    /// The call happened: it ended after both sides were connected. Final: no later status
    /// (a late `agent_connected`, an `error` after `end`) asks for a call-back again.
    Happened,
}

impl CallProgress {
    /// What one status says.
    pub fn of(facts: &CallFacts) -> Self {
        Self {
            callback: facts.kind == CallKind::Callback,
            connected: facts.status == CallStatus::ClientConnected
                || (facts.kind == CallKind::Incoming && facts.status == CallStatus::AgentConnected),
            ended: facts.status == CallStatus::End,
            failed: facts.status == CallStatus::Error,
        }
    }

    /// What both say together.
    pub fn merge(self, other: Self) -> Self {
        Self {
            callback: self.callback || other.callback,
            connected: self.connected || other.connected,
            ended: self.ended || other.ended,
            failed: self.failed || other.failed,
        }
    }

    /// What the call needs.
    pub fn outcome(self) -> CallOutcome {
        if self.connected && self.ended {
            CallOutcome::Happened
        } else if self.callback || self.failed || self.ended {
            CallOutcome::CallBack
        } else {
            CallOutcome::UnderWay
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(kind: CallKind, status: CallStatus) -> CallFacts {
        CallFacts {
            key: "jivochat:1".to_owned(),
            kind,
            status,
        }
    }

    fn outcome(kind: CallKind, statuses: &[CallStatus]) -> CallOutcome {
        statuses
            .iter()
            .map(|s| CallProgress::of(&facts(kind, *s)))
            .fold(CallProgress::default(), CallProgress::merge)
            .outcome()
    }

    /// Every order of every prefix of a status sequence, as statuses may arrive.
    fn orders(statuses: &[CallStatus]) -> Vec<Vec<CallStatus>> {
        if statuses.is_empty() {
            return vec![Vec::new()];
        }
        let mut all = Vec::new();
        for (i, s) in statuses.iter().enumerate() {
            let mut rest = statuses.to_vec();
            rest.remove(i);
            for mut order in orders(&rest) {
                order.insert(0, *s);
                all.push(order);
            }
        }
        all
    }

    use CallStatus::*;

    #[test]
    fn a_callback_needs_a_call_back_until_it_ends_connected() {
        let kind = CallKind::Callback;
        assert_eq!(outcome(kind, &[Start]), CallOutcome::CallBack);
        assert_eq!(
            outcome(kind, &[Start, AgentConnected]),
            CallOutcome::CallBack
        );
        assert_eq!(
            outcome(kind, &[Start, AgentConnected, ClientConnected]),
            CallOutcome::CallBack
        );
        for order in orders(&[Start, AgentConnected, ClientConnected, End]) {
            assert_eq!(outcome(kind, &order), CallOutcome::Happened, "{order:?}");
        }
        // Ended without the visitor answering: still to call back.
        assert_eq!(
            outcome(kind, &[Start, AgentConnected, End]),
            CallOutcome::CallBack
        );
    }

    #[test]
    fn a_missed_incoming_call_needs_a_call_back_and_an_answered_one_does_not() {
        let kind = CallKind::Incoming;
        assert_eq!(outcome(kind, &[Start]), CallOutcome::UnderWay);
        for order in orders(&[Start, Error]) {
            assert_eq!(outcome(kind, &order), CallOutcome::CallBack, "{order:?}");
        }
        assert_eq!(outcome(kind, &[Start, End]), CallOutcome::CallBack);
        for order in orders(&[Start, AgentConnected, End]) {
            assert_eq!(outcome(kind, &order), CallOutcome::Happened, "{order:?}");
        }
    }

    #[test]
    fn a_call_that_happened_stays_happened_whatever_comes_later() {
        let done = [Start, AgentConnected, ClientConnected, End];
        for late in [Start, AgentConnected, ClientConnected, Error, End] {
            let mut statuses = done.to_vec();
            statuses.push(late);
            assert_eq!(
                outcome(CallKind::Outgoing, &statuses),
                CallOutcome::Happened,
                "{late:?}"
            );
        }
    }

    #[test]
    fn statuses_rank_by_how_far_along_the_call_is() {
        assert!(Start < AgentConnected && AgentConnected < ClientConnected);
        assert!(ClientConnected < Error && Error < End);
        assert_eq!(CallStatus::parse("client_connected"), Some(ClientConnected));
        assert_eq!(CallStatus::parse("ringing"), None);
        assert_eq!(CallKind::parse("callback"), Some(CallKind::Callback));
        assert_eq!(CallKind::parse("video"), None);
    }
}
