//! Dispatch: workers that claim stored events and execute their plans against GHL.
