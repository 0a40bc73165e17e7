//! Privilege drop after binding: supplementary groups cleared, then group, then user; scripts refused as root.

use nix::unistd::{Gid, Group, Uid, User, setgid, setgroups, setuid};

use super::OpsOptions;

/// Looks a user up by name or uid.
pub fn user(s: &str) -> Result<User, String> {
    let found = match s.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n)),
        Err(_) => User::from_name(s),
    };
    found
        .map_err(|e| format!("user {s:?}: {e}"))?
        .ok_or_else(|| format!("no such user {s:?}"))
}

/// Looks a group up by name or gid.
pub fn group(s: &str) -> Result<Gid, String> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    Group::from_name(s)
        .map_err(|e| format!("group {s:?}: {e}"))?
        .map(|g| g.gid)
        .ok_or_else(|| format!("no such group {s:?}"))
}

/// Switches to `--user`/`--group` (when given) and refuses to go on running scripts as
/// root unless `allow_root`. Called once the socket is bound and set up.
pub fn drop_privileges(opts: &OpsOptions) -> Result<(), String> {
    if opts.group.is_some() && opts.user.is_none() && !Uid::effective().is_root() {
        return Err("--group needs root (or --user as well)".into());
    }
    if let Some(name) = &opts.user {
        let u = user(name)?;
        let gid = match &opts.group {
            Some(g) => group(g)?,
            None => u.gid,
        };
        if Uid::effective() != u.uid || Gid::effective() != gid {
            setgroups(&[]).map_err(|e| format!("cannot drop supplementary groups: {e}"))?;
            setgid(gid).map_err(|e| format!("cannot switch to group {gid}: {e}"))?;
            setuid(u.uid).map_err(|e| format!("cannot switch to user {name:?}: {e}"))?;
        }
        // The switch must be one-way: root cannot be regained.
        if !u.uid.is_root() && (Uid::effective().is_root() || setuid(Uid::from_raw(0)).is_ok()) {
            return Err(format!("still root after switching to {name:?}"));
        }
    } else if let Some(g) = &opts.group {
        let gid = group(g)?;
        setgroups(&[]).map_err(|e| format!("cannot drop supplementary groups: {e}"))?;
        setgid(gid).map_err(|e| format!("cannot switch to group {gid}: {e}"))?;
    }
    if opts.runs_scripts && Uid::effective().is_root() && !opts.allow_root {
        return Err(
            "refusing to run CGI scripts as root: give --user (e.g. www-data), or --allow-root"
                .into(),
        );
    }
    Ok(())
}
