use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    webir_audit::run::start_with_huge_pages();
    let cli = webir_audit::cli::Cli::parse();
    webir_audit::run::write_errors_not_signals();
    cli.init_logging();
    let stdout = std::io::stdout();
    match webir_audit::cli::run(&cli, &mut stdout.lock()) {
        Ok(status) => ExitCode::from(status as u8),
        Err(e) => {
            // The one place the binary writes an error: the library returns it.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(e.exit_status() as u8)
        }
    }
}
