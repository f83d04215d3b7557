//! Names desktop clients ask for in every folder they open, expecting them to be missing.
//!
//! Finder looks for AppleDouble files (`._name`), `.DS_Store`, Spotlight and Time Machine
//! markers; Explorer for `desktop.ini`, `folder.jpg` and `AutoRun.inf`. Left alone, each probe
//! would make the catalog list the folder it sits in (Google calls, size probes) just to answer
//! 404. The HTTP layer answers them from memory instead: a probe name is served normally only
//! when listings already in memory show it (a real photo named `folder.jpg` stays reachable
//! once its folder was listed, which every client does before opening an entry).

/// Names only macOS asks for, none of which a Google Photos item can carry (the tree gives
/// every file an extension matching its type).
const MAC_PROBES: [&str; 14] = [
    ".DS_Store",
    ".localized",
    ".Spotlight-V100",
    ".metadata_never_index",
    ".metadata_never_index_unless_rootfs",
    ".metadata_direct_scope_only",
    ".ql_disablethumbnails",
    ".ql_disablecache",
    ".Trashes",
    ".TemporaryItems",
    ".hidden",
    ".VolumeIcon.icns",
    "Backups.backupdb",
    "mach_kernel",
];

/// Names Windows asks for (case-insensitively, like Windows itself).
const WINDOWS_PROBES: [&str; 3] = ["desktop.ini", "autorun.inf", "thumbs.db"];

/// Windows' probes that are also plausible photo names: probes only when Explorer sends them.
const WINDOWS_PICTURE_PROBES: [&str; 2] = ["folder.jpg", "folder.gif"];

/// The User-Agent of Windows' WebDAV client (Explorer, `net use`).
const WINDOWS_AGENT: &str = "Microsoft-WebDAV-MiniRedir";

/// Whether `name`, sent by a client with `user_agent`, is a probe rather than a real request.
pub fn is_probe(name: &str, user_agent: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with("._")
        || MAC_PROBES.contains(&name)
        || WINDOWS_PROBES.contains(&lower.as_str())
        || (user_agent.contains(WINDOWS_AGENT) && WINDOWS_PICTURE_PROBES.contains(&lower.as_str()))
}

#[cfg(test)]
mod tests {
    use super::is_probe;

    #[test]
    fn probes_are_recognised_and_photos_are_not() {
        let explorer = "Microsoft-WebDAV-MiniRedir/10.0.19045";
        let rclone = "rclone/v1.60.1";
        for name in [
            "._.",
            "._IMG_0001.JPG",
            ".DS_Store",
            "Backups.backupdb",
            "AutoRun.inf",
        ] {
            assert!(is_probe(name, rclone), "{name}");
        }
        assert!(is_probe("Folder.jpg", explorer));
        assert!(
            !is_probe("folder.jpg", rclone),
            "a photo may be named folder.jpg"
        );
        for name in ["IMG_0001.JPG", ".DS_Store.jpg", "album", "_.jpg"] {
            assert!(!is_probe(name, explorer), "{name}");
        }
    }
}
