import type { Command } from 'commander';
import type { Deployment, DeploymentList } from '../admin-types.js';
import { clientFor, emit, examples } from '../cli-context.js';
import { formatDuration } from '../durations.js';
import { renderTable } from '../format.js';

const NONE = '-';

function state(deployment: Deployment): string {
  const { circuit } = deployment;
  if (!circuit.enabled) return 'closed (no breaker)';
  if (circuit.state === 'open' && circuit.retry_after_ms !== null)
    return `open (${formatDuration(Math.ceil(circuit.retry_after_ms / 1000))} left)`;
  if (circuit.state === 'half-open' && circuit.probing) return 'half-open (probing)';
  return circuit.state;
}

function limits(deployment: Deployment): string {
  const { requests_per_minute: rpm, tokens_per_minute: tpm, max_concurrent: concurrent } = deployment.limits;
  const parts = [
    rpm === null ? '' : `${rpm} rpm`,
    tpm === null ? '' : `${tpm} tpm`,
    concurrent === null ? '' : `${concurrent} at once`,
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : NONE;
}

function deploymentsTable(list: DeploymentList): string {
  const headers = ['MODEL', 'DEPLOYMENT', 'BACKEND', 'STATE', 'FAILURES', 'IN FLIGHT', 'LATENCY', 'LIMITS'];
  const rows = list.data.map((deployment) => [
    deployment.model,
    deployment.name,
    deployment.backend,
    state(deployment),
    String(deployment.circuit.consecutive_failures),
    String(deployment.in_flight),
    deployment.latency_ms === null ? NONE : `${Math.round(deployment.latency_ms)} ms`,
    limits(deployment),
  ]);
  return renderTable(headers, rows);
}

export function registerDeploymentsCommand(program: Command): void {
  program
    .command('deployments')
    .description(
      "every deployment of every model: its circuit (shared by the fleet), and the answering instance's in-flight count and latency",
    )
    .addHelpText('after', examples(['tollgate deployments', 'tollgate deployments --json']))
    .action(async (_options: unknown, command: Command) => {
      emit(command, await clientFor(command).listDeployments(), deploymentsTable);
    });
}
