// @peculiar/x509 relies on tsyringe, which needs the reflect-metadata polyfill loaded first.
import 'reflect-metadata';
