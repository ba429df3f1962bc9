import { describe, expect, it } from 'vitest';
import { AgentPathTemplate } from './template.js';

const data = {
  PluginName: 'x509pop',
  Fingerprint: 'ab12',
  Subject: { CommonName: 'Node 1', Organization: ['Acme', 'Ops'], String: 'CN=Node 1,O=Acme' },
  URISanSelectors: { rack: 'r7' },
  DNSNames: ['a.example', 'b.example'],
  Version: 3,
};
const run = (src: string): string => AgentPathTemplate.parse(src).execute(data);

describe('agent_path_template (Go text/template subset)', () => {
  it('renders SPIRE\'s defaults and field chains', () => {
    expect(run('/{{ .PluginName }}/{{ .Fingerprint }}')).toBe('/x509pop/ab12');
    expect(run('/{{.Subject.CommonName}}/{{ .URISanSelectors.rack }}')).toBe('/Node 1/r7');
    expect(run('/{{ .Version }}')).toBe('/3');
  });

  it('prints lists and names as Go does', () => {
    expect(run('{{ .Subject.Organization }}')).toBe('[Acme Ops]');
    expect(run('{{ .Subject }}')).toBe('CN=Node 1,O=Acme');
  });

  it('pipes values into functions as their last argument', () => {
    expect(run('/{{ .Subject.CommonName | lower | replace " " "-" }}')).toBe('/node-1');
    expect(run('/{{ trimPrefix "ab" .Fingerprint }}')).toBe('/12');
    expect(run('/{{ index .DNSNames 1 }}/{{ index .URISanSelectors "rack" }}')).toBe('/b.example/r7');
    expect(run('/{{ .Fingerprint | upper | trunc 1 }}')).toBe('/A');
    expect(run('/{{ .Subject.CommonName | sha256sum | trunc 8 }}')).toMatch(/^\/[0-9a-f]{8}$/);
  });

  it('trims whitespace around {{- and -}}', () => {
    expect(run('/a  {{- .PluginName -}}  /b')).toBe('/ax509pop/b');
    expect(run('/a {{ .PluginName }} b')).toBe('/a x509pop b');
  });

  it('fails on a missing key or field (missingkey=error)', () => {
    expect(() => run('/{{ .URISanSelectors.zone }}')).toThrow(/no entry for key "zone"/);
    expect(() => run('/{{ .Nope }}')).toThrow(/Nope/);
    expect(() => run('/{{ .Fingerprint.Deeper }}')).toThrow(/can't evaluate field Deeper/);
    expect(() => run('/{{ index .DNSNames 5 }}')).toThrow(/out of range/);
  });

  it('refuses what it does not read, naming it', () => {
    expect(() => AgentPathTemplate.parse('{{ if .X }}a{{ end }}')).toThrow(/"if" is not supported/);
    expect(() => AgentPathTemplate.parse('{{ range .DNSNames }}{{ . }}{{ end }}')).toThrow(/"range" is not supported/);
    expect(() => AgentPathTemplate.parse('{{ $x := .A }}')).toThrow(/variables/);
    expect(() => AgentPathTemplate.parse('{{ .A')).toThrow(/unclosed/);
    expect(() => AgentPathTemplate.parse('{{ }}')).toThrow(/empty action/);
    expect(() => AgentPathTemplate.parse('{{ upper }}')).toThrow(/takes 1 argument/);
    expect(() => AgentPathTemplate.parse('{{ printf "%s" .A }}')).toThrow(/not supported/);
    expect(() => AgentPathTemplate.parse('{{ .A | .B }}')).toThrow(/cannot receive a piped value/);
  });
});
