// @peculiar/x509 relies on tsyringe, which needs the reflect-metadata polyfill loaded first.
import 'reflect-metadata';
import { afterAll } from 'vitest';
import { removeFixtureTempDirs } from '../src/securefs/testing.js';

// Plugin fixtures make their directories on demand; they go when the test file is done.
afterAll(removeFixtureTempDirs);
