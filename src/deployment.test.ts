// The Kubernetes manifests in deploy/kubernetes/: each object validated against the published
// Kubernetes (and Prometheus Operator) OpenAPI schemas, then checked for consistency with each
// other and with the daemon: the mounted config loads, probes hit routes that exist, ports, labels
// and names line up, the volume outsizes the quota, the grace period outlasts the drain.
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { buildConfig } from './config/load.ts';
import { parseSize } from './config/units.ts';
import { Router } from './http/router.ts';
import { DAEMON_NODE_FLAGS } from './testing/daemon-flags.ts';
import { parseDockerfile } from './testing/dockerfile.ts';

const dir = join(import.meta.dirname, '..', 'deploy', 'kubernetes');

interface Model {
  validate(): void;
}
type ModelClass = new (data: never) => Model;
const MODELS: Record<string, ModelClass> = {
  'v1/Namespace': Namespace as unknown as ModelClass,
  'v1/ConfigMap': ConfigMap as unknown as ModelClass,
  'v1/Secret': Secret as unknown as ModelClass,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim as unknown as ModelClass,
  'v1/Service': Service as unknown as ModelClass,
  'apps/v1/Deployment': Deployment as unknown as ModelClass,
  'networking.k8s.io/v1/Ingress': Ingress as unknown as ModelClass,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor as unknown as ModelClass,
};

// Loose views of the objects, for the cross-checks below (the schemas already vouched for shape).
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> } } & Record<string, any>;

async function load(): Promise<Map<string, Obj>> {
  const out = new Map<string, Obj>();
  for (const f of (await readdir(dir)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
    for (const doc of parseAllDocuments(await readFile(join(dir, f), 'utf8'))) {
      assert.equal(doc.errors.length, 0, `${f}: ${doc.errors.join('; ')}`);
      const o = doc.toJS() as Obj;
      out.set(o.kind, o);
      out.set(`file:${o.kind}`, { ...o, metadata: { ...o.metadata, name: f } });
    }
  }
  return out;
}

const objs = await load();
const get = (kind: string): Obj => {
  const o = objs.get(kind);
  assert.ok(o, `${kind} is shipped`);
  return o;
};

describe('deploy/kubernetes manifests', () => {
  it('validate against the Kubernetes and Prometheus Operator schemas', () => {
    const kinds = [...objs.keys()].filter((k) => !k.startsWith('file:'));
    assert.deepEqual(kinds.sort(), ['ConfigMap', 'Deployment', 'Ingress', 'Namespace', 'PersistentVolumeClaim', 'Secret', 'Service', 'ServiceMonitor']);
    for (const kind of kinds) {
      const o = get(kind);
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      assert.ok(Model, `${o.apiVersion} ${o.kind} has a schema`);
      assert.doesNotThrow(() => new Model(o as never).validate(), `${objs.get(`file:${kind}`)?.metadata.name}`);
      assert.equal(o.metadata.namespace ?? 'regcache', 'regcache', `${kind} lives in the regcache namespace`);
    }
  });

  it('the schema check itself rejects a broken object', () => {
    const broken = structuredClone(get('Deployment'));
    broken['spec'].template.spec.containers[0].ports[0].containerPort = 'five thousand';
    assert.throws(() => new Deployment(broken as never).validate(), /containerPort/);
  });

  it('kustomization lists files that exist, and only optional extras are left out', async () => {
    const k = parseAllDocuments(await readFile(join(dir, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as { resources: string[] };
    const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    for (const r of k.resources) assert.ok(files.includes(r), `${r} exists`);
    assert.deepEqual(files.filter((f) => !k.resources.includes(f)).sort(), ['ingress.yaml', 'servicemonitor.yaml']);
  });

  it('mounts a config the daemon accepts, with state on the volume and secrets from the Secret', () => {
    const deploy = get('Deployment');
    const pod = deploy['spec'].template.spec;
    const c = pod.containers[0];
    const configFile = c.env.find((e: { name: string }) => e.name === 'REGCACHE_CONFIG').value as string;
    const configMount = c.volumeMounts.find((m: { mountPath: string }) => configFile.startsWith(`${m.mountPath}/`));
    assert.ok(configMount, 'REGCACHE_CONFIG points into a mounted volume');
    const configVolume = pod.volumes.find((v: { name: string }) => v.name === configMount.name);
    assert.equal(configVolume.configMap.name, get('ConfigMap').metadata.name);
    const key = configFile.slice(configMount.mountPath.length + 1);
    const yaml = get('ConfigMap')['data'][key] as string;
    assert.ok(yaml, `the ConfigMap has ${key}`);
    const secretEnv = Object.fromEntries(Object.keys(get('Secret')['stringData']).map((k) => [k, '']));
    const config = buildConfig(parseAllDocuments(yaml)[0]!.toJS(), secretEnv, 'configmap');
    assert.equal(config.admin.token, undefined, 'an unfilled Secret leaves the admin API off instead of failing');

    const dataMount = c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === config.storage.root);
    assert.ok(dataMount, `storage.root ${config.storage.root} is a mounted volume`);
    const dataVolume = pod.volumes.find((v: { name: string }) => v.name === dataMount.name);
    const pvc = get('PersistentVolumeClaim');
    assert.equal(dataVolume.persistentVolumeClaim.claimName, pvc.metadata.name);
    const volumeBytes = parseSize(String(pvc['spec'].resources.requests.storage).replace(/i$/, 'iB'));
    assert.ok(volumeBytes && config.storage.quotaBytes && config.storage.quotaBytes <= volumeBytes * 0.95, 'the quota leaves room for temp files and metadata');
    assert.equal(deploy['spec'].strategy.type, 'Recreate', 'never two pods on one ReadWriteOnce volume and database');
    assert.equal(deploy['spec'].replicas, 1);

    assert.equal(c.envFrom[0].secretRef.name, get('Secret').metadata.name);
    for (const k of Object.keys(get('Secret')['stringData'])) assert.match(k, /^REGCACHE_(UPSTREAM_[A-Z0-9_]+_(USERNAME|PASSWORD)|ADMIN_TOKEN|AUTH_TOKENS)$/, `${k} is a variable the daemon reads`);
    assert.doesNotMatch(yaml, /^\s*(username|password|token):/m, 'no credentials in the ConfigMap');

    assert.ok(pod.terminationGracePeriodSeconds * 1000 > config.shutdownTimeoutMs, 'the grace period outlasts the drain');
    const port = Number(/:(\d+)$/.exec(config.listen)![1]);
    assert.equal(c.ports.find((p: { name: string }) => p.name === 'http').containerPort, port);
  });

  it('probes routes the daemon answers, and runs as the non-root image user with a read-only root', () => {
    const pod = get('Deployment')['spec'].template.spec;
    const c = pod.containers[0];
    const router = new Router([{ name: 'docker.io', mirror: true, implicitLibrary: true, aliases: [] }]);
    assert.equal(router.route('GET', c.readinessProbe.httpGet.path).kind, 'ready');
    assert.equal(router.route('GET', c.livenessProbe.httpGet.path).kind, 'health');
    assert.equal(c.readinessProbe.httpGet.port, 'http');
    assert.equal(c.resources.requests.memory, '256Mi');
    assert.equal(c.resources.limits.memory, '768Mi');
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  });

  it('wires Service, Ingress and ServiceMonitor to the pods by label and port name', () => {
    const labels = get('Deployment')['spec'].template.metadata.labels as Record<string, string>;
    const containerPorts = (get('Deployment')['spec'].template.spec.containers[0].ports as Array<{ name: string }>).map((p) => p.name);
    const svc = get('Service');
    for (const [k, v] of Object.entries(svc['spec'].selector as Record<string, string>)) assert.equal(labels[k], v, `Service selects the pods by ${k}`);
    for (const p of svc['spec'].ports) assert.ok(containerPorts.includes(p.targetPort), `targetPort ${p.targetPort} is a container port`);
    const servicePorts = (svc['spec'].ports as Array<{ name: string }>).map((p) => p.name);

    const ing = get('Ingress');
    assert.equal(ing.metadata.annotations?.['nginx.ingress.kubernetes.io/proxy-body-size'], '0', 'no body-size limit: layers are large');
    assert.equal(ing.metadata.annotations?.['nginx.ingress.kubernetes.io/proxy-buffering'], 'off', 'stream, do not buffer');
    for (const rule of ing['spec'].rules) {
      for (const p of rule.http.paths) {
        assert.equal(p.backend.service.name, svc.metadata.name);
        assert.ok(servicePorts.includes(p.backend.service.port.name));
      }
    }

    const sm = get('ServiceMonitor');
    for (const [k, v] of Object.entries(sm['spec'].selector.matchLabels as Record<string, string>)) assert.equal(svc.metadata.labels?.[k], v, 'ServiceMonitor selects the Service');
    for (const e of sm['spec'].endpoints) {
      assert.ok(servicePorts.includes(e.port));
      assert.equal(new Router([]).route('GET', e.path).kind, 'metrics');
    }
  });

  it('gives Node the same flags however the daemon is started: npm start, the image, the regcache bin', async () => {
    assert.ok(DAEMON_NODE_FLAGS.includes('--max-semi-space-size=4'), `npm start flags: ${DAEMON_NODE_FLAGS.join(' ')}`);
    const stages = parseDockerfile(await readFile(join(import.meta.dirname, '..', 'Dockerfile'), 'utf8'));
    const cmd = stages.at(-1)?.instructions.filter((i) => i.cmd === 'CMD').at(-1)?.exec;
    assert.deepEqual(cmd, ['node', ...DAEMON_NODE_FLAGS, 'dist/main.js'], 'Dockerfile CMD');
    const shebang = (await readFile(join(import.meta.dirname, 'main.ts'), 'utf8')).split('\n')[0];
    assert.equal(shebang, `#!/usr/bin/env -S node ${DAEMON_NODE_FLAGS.join(' ')}`, 'main.ts shebang (the regcache bin)');
    for (const c of get('Deployment')['spec'].template.spec.containers) assert.equal(c.command, undefined, 'the Deployment keeps the image CMD');
  });
});
