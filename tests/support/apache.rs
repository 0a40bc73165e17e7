//! `Apache` guard: a real apache2 (mpm_event, cgid, proxy_fcgi) on 127.0.0.1 with its own minimal config in a temp dir.

use super::procs::{Proc, Started, server_command, start_on_free_port};
use super::{TempDir, find_program, is_root, read_log};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};

/// Where Debian keeps the loadable modules.
pub const MODULE_DIR: &str = "/usr/lib/apache2/modules";

/// Modules loaded by every test server (name, file).
const MODULES: &[(&str, &str)] = &[
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("mime_module", "mod_mime.so"),
    ("cgid_module", "mod_cgid.so"),
    ("alias_module", "mod_alias.so"),
    ("env_module", "mod_env.so"),
    ("setenvif_module", "mod_setenvif.so"),
    ("headers_module", "mod_headers.so"),
    ("proxy_module", "mod_proxy.so"),
    ("proxy_fcgi_module", "mod_proxy_fcgi.so"),
];

/// A running apache2 parent (with its children), stopped by PID on drop.
pub struct Apache(Started);

super::procs::started_guard!(Apache);

fn main_conf(dir: &Path, port: u16, snippet: &str) -> String {
    let d = dir.display();
    let mut s = format!(
        "ServerRoot \"{d}\"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile \"{d}/apache.pid\"
DefaultRuntimeDir \"{d}/run\"
Mutex file:{d}/run default
ErrorLog \"{d}/error.log\"
LogLevel info
"
    );
    for (name, file) in MODULES {
        s.push_str(&format!("LoadModule {name} {MODULE_DIR}/{file}\n"));
    }
    if is_root() {
        s.push_str("User www-data\nGroup www-data\n");
    }
    s.push_str(&format!(
        "StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
MinSpareThreads 1
MaxSpareThreads 32
ScriptSock \"{d}/run/cgid.sock\"
TypesConfig /dev/null
AddType text/html .html
AddType text/plain .txt
LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b\" common
CustomLog \"{d}/access.log\" common
DocumentRoot \"{d}/htdocs\"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory \"{d}/htdocs\">
    Require all granted
</Directory>
{snippet}
"
    ));
    s
}

impl Apache {
    /// Starts apache2 (`apache2 -f CONF -DFOREGROUND`) with `snippet` appended to the main
    /// config. Waits until the pid file exists and the port accepts. Panics, with the error
    /// log, when apache2 or its modules are missing or it fails to start.
    pub fn start(snippet: &str) -> Apache {
        Apache::start_with_env(snippet, &[])
    }

    /// Like [`Apache::start`], with `env` added to the server's otherwise clean environment
    /// (e.g. a daemon secret that must not reach CGI scripts).
    pub fn start_with_env(snippet: &str, env: &[(&str, &str)]) -> Apache {
        let bin = find_program("apache2");
        assert!(
            Path::new(MODULE_DIR).join("mod_proxy_fcgi.so").is_file(),
            "apache2 modules not found in {MODULE_DIR}; `bash scripts/test.sh` installs apache2"
        );
        let started = start_on_free_port("apache", "apache.pid", |dir, port| {
            dir.subdir("htdocs");
            dir.subdir("run");
            let conf = dir.join("apache2.conf");
            std::fs::write(&conf, main_conf(dir.path(), port, snippet))
                .expect("write apache2.conf");
            let mut cmd = server_command(&bin);
            cmd.envs(env.iter().copied())
                .arg("-f")
                .arg(&conf)
                .arg("-DFOREGROUND");
            (cmd, conf)
        });
        Apache(started)
    }

    /// The DocumentRoot.
    pub fn docroot(&self) -> PathBuf {
        self.0.dir.join("htdocs")
    }
}
