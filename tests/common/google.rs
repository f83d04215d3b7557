//! The product's Google client on an emulator: shared by the tests (`common::google_on`) and
//! the benchmarks (`benches/support`, which include this file by path).

use gphotos_dav::google::{Credentials, Endpoints, Google, RetryPolicy};
use gphotos_dav_emulator::{self as emulator, RunningEmulator};

/// A Google client (Library, Picker, content) on `emu`, signed in with `refresh_token`,
/// retrying as `retry` says.
pub fn google_with(emu: &RunningEmulator, refresh_token: &str, retry: RetryPolicy) -> Google {
    Google::new(
        &Credentials {
            client_id: emulator::CLIENT_ID.into(),
            client_secret: emulator::CLIENT_SECRET.into(),
            refresh_token: refresh_token.into(),
            persist_to: None,
        },
        &Endpoints {
            api_base: emu.api_base(),
            token_url: emu.token_url(),
            picker_base: emu.picker_base(),
        },
        retry,
    )
    .expect("a Google client")
}
